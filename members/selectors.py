from __future__ import annotations

from typing import Any, Iterable

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
    """Active and retired keys verify statements; pending and revoked ones never do."""
    keys = SigningKey.objects.filter(state__in=[SigningKey.State.ACTIVE, SigningKey.State.RETIRED]).select_related("member")
    return [{**key.jwk(), "member": key.member.slug, "state": key.state} for key in keys]
