from __future__ import annotations

from typing import Any

from .models import SigningKey


def published_keys() -> list[dict[str, Any]]:
    """Active and retired keys verify statements; pending and revoked ones never do."""
    keys = SigningKey.objects.filter(state__in=[SigningKey.State.ACTIVE, SigningKey.State.RETIRED]).select_related("member")
    return [{**key.jwk(), "member": key.member.slug, "state": key.state} for key in keys]
