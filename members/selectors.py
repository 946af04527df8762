from __future__ import annotations

from typing import Any, Iterable

from .models import SharingGroup, SigningKey


def sharing_groups_of(member_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """Each member's sharing groups as {slug: id}, in slug order, for many members in one query
    (every member asked for is in the answer, with no groups if it has none)."""
    groups: dict[int, dict[str, int]] = {member_id: {} for member_id in member_ids}
    if groups:
        for member_id, slug, group_id in SharingGroup.members.through.objects.filter(
                member_id__in=list(groups)).order_by("sharinggroup__slug").values_list(
                "member_id", "sharinggroup__slug", "sharinggroup_id"):
            groups[member_id][slug] = group_id
    return groups


def published_keys() -> list[dict[str, Any]]:
    """Active and retired keys verify statements; pending and revoked ones never do."""
    keys = SigningKey.objects.filter(state__in=[SigningKey.State.ACTIVE, SigningKey.State.RETIRED]).select_related("member")
    return [{**key.jwk(), "member": key.member.slug, "state": key.state} for key in keys]
