from __future__ import annotations

from typing import Any, Iterable

from django.db.models import Q

from consortium.db import read_by_ids

from .models import SigningKey


def sharing_groups_of(member_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """Each member's sharing groups as {slug: id}, in slug order, for many members in one query
    (every member asked for is in the answer, with no groups if it has none). Plain SQL: it runs on
    every API request, where compiling a queryset would cost several times the query."""
    groups: dict[int, dict[str, int]] = {member_id: {} for member_id in member_ids}
    for member_id, slug, group_id in read_by_ids(
        "SELECT m.member_id, g.slug, g.id FROM members_sharinggroup_members m"
        " JOIN members_sharinggroup g ON g.id = m.sharinggroup_id WHERE m.member_id IN ({ids}) ORDER BY g.slug",
        groups,
    ):
        groups[member_id][slug] = group_id
    return groups


def published_keys() -> list[dict[str, Any]]:
    """Active and retired keys verify statements; pending ones never do, nor revoked ones, whose
    statements are withdrawn (hashes.services.revocation), except a key revoked as compromised only
    from a time on (`compromised_since`): what it signed before then stays live, so it stays here,
    saying so, for anyone to verify those statements."""
    keys = SigningKey.objects.filter(
        Q(state__in=[SigningKey.State.ACTIVE, SigningKey.State.RETIRED])
        | Q(state=SigningKey.State.REVOKED, compromised_since__isnull=False)).select_related("member")
    return [{**key.jwk(), "member": key.member.slug, "state": key.state,
             **({"compromised_since": key.compromised_since} if key.state == SigningKey.State.REVOKED else {})}
            for key in keys]
