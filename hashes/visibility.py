"""The one rule for who may see what. Every way out (feed, hash detail, match, webhooks, exports)
asks this module; nothing else decides visibility.

A statement is visible to a member when it was shared with the whole consortium, shared with a
sharing group the member belongs to, or made by the member itself. A hash is visible when at least
one of its statements is, and a member sees of a hash only what its visible statements say.

A viewer narrowed to one audience (`Viewer.within`) sees only the statements it may see that were
shared with that audience: the whole consortium's, or one of its sharing groups'. The TAXII
collections are such views."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Iterable

from django.db.models import Exists, OuterRef, Q, QuerySet

from members.models import Member
from members.selectors import sharing_groups_of

from .models import Corroboration, Hash

if TYPE_CHECKING:
    from members.authentication import ApiClient


@dataclass(frozen=True)
class Audience:
    """Statements shared with the whole consortium (`share_group_id` None) or with one sharing group."""

    share_group_id: int | None


@dataclass(frozen=True)
class Viewer:
    member_id: int
    group_ids: frozenset[int]
    # None: every statement the member may see; otherwise only those shared with this audience.
    audience: Audience | None = None

    @classmethod
    def for_member(cls, member: Member) -> Viewer:
        return viewers_for_ids([member.pk])[member.pk]

    @classmethod
    def for_client(cls, client: ApiClient) -> Viewer:
        """The viewer of an API request: its member, with the sharing groups read with its token."""
        return cls(client.member.pk, frozenset(client.sharing_groups.values()))

    def within(self, share_group_id: int | None) -> Viewer:
        """This viewer narrowed to the statements shared with one audience it belongs to: the whole
        consortium (None, the same view for every member) or one of its sharing groups."""
        if share_group_id is not None and share_group_id not in self.group_ids:
            raise ValueError("a member sees nothing of a sharing group it does not belong to")
        return replace(self, audience=Audience(share_group_id))

    def sees(self, *, share_group_id: int | None, member_id: int) -> bool:
        if self.audience is not None and share_group_id != self.audience.share_group_id:
            return False
        return share_group_id is None or share_group_id in self.group_ids or member_id == self.member_id

    def statement_q(self, prefix: str = "") -> Q:
        visible = (
            Q(**{f"{prefix}share_group__isnull": True})
            | Q(**{f"{prefix}share_group_id__in": self.group_ids})
            | Q(**{f"{prefix}member_id": self.member_id})
        )
        if self.audience is None:
            return visible
        return visible & Q(**{f"{prefix}share_group_id": self.audience.share_group_id})  # None: IS NULL

    def statement_sql(self, alias: str, vendor: str) -> tuple[str, list[object]]:
        """`statement_q` as a condition of a plain SQL read on the statement table named `alias`, with
        its parameters: the same rule, for reads on every request. The text depends on the viewer
        only through whether it has an audience (and, off PostgreSQL, how many groups it has), so a
        prepared read keeps one plan."""
        if vendor == "postgresql":
            groups, params = f"{alias}.share_group_id = ANY(%s)", [sorted(self.group_ids)]
        else:
            params = sorted(self.group_ids)
            groups = f"{alias}.share_group_id IN ({', '.join(['%s'] * len(params))})" if params else "1 = 0"
        sql = f"({alias}.share_group_id IS NULL OR {groups} OR {alias}.member_id = %s)"
        params.append(self.member_id)
        if self.audience is not None:
            if self.audience.share_group_id is None:
                sql += f" AND {alias}.share_group_id IS NULL"
            else:
                sql += f" AND {alias}.share_group_id = %s"
                params.append(self.audience.share_group_id)
        return sql, params


def visible_hashes(viewer: Viewer, *, live_only: bool = False) -> QuerySet[Hash]:
    """Hashes with a statement the viewer may see (live ones only, if asked)."""
    corroborations = Corroboration.objects.filter(viewer.statement_q("statement__"), hash_id=OuterRef("pk"))
    if live_only:
        corroborations = corroborations.filter(retracted_at__isnull=True)
    return Hash.objects.filter(Exists(corroborations))


def viewers_for_ids(member_ids: Iterable[int]) -> dict[int, Viewer]:
    """Viewer.for_member for many members in one query."""
    return {pk: Viewer(pk, frozenset(groups.values())) for pk, groups in sharing_groups_of(member_ids).items()}
