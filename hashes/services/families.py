"""Variant families: where each new signal of a publishing batch goes.

A PDQ within DEDUPE_DISTANCE of a live hash corroborates that hash; within MATCH_DISTANCE it
becomes a new hash in that hash's cluster, and a new hash that links several clusters merges them.
A vPDQ video that matches a video on both percentages (VPDQ_DUPLICATE_PERCENT) corroborates it; on
either percentage (VPDQ_CLUSTER_PERCENT) it joins its cluster.

Non-interference: a statement is placed only by what everyone who can see it can see, so that what
a sharing group holds never shapes what an outsider observes. A statement's audience is the whole
consortium or one sharing group, and so is every hash's (the audience of the statement that created
it). A consortium-wide statement only meets consortium-wide hashes that a consortium-wide statement
keeps live; a group's statement meets those and its own group's. Exact values and near duplicates
alike: a consortium statement equal to a group-only value makes a new consortium hash, never
joins the group's. A group hash may link to a consortium hash near it, but families (clusters)
are unioned only within one audience, so no group statement ever bridges or merges consortium
families.

Runs under the feed lock with the match indexes caught up, so the decisions are exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from django.conf import settings
from django.db.models import Exists, F, OuterRef, Q

from consortium.db import AnyOf, insert_rows

from ..matching import frames_shared, indexes
from ..models import Cluster, Corroboration, Hash, HashLink, Statement
from ..signals.vpdq import compare_rows, usable_rows

SignalKey = tuple[str, str]  # (signal type, value)
HashKey = tuple[str, str, int | None]  # (signal type, value, audience: a sharing group or None)


def audiences(statement: Statement) -> tuple[int | None, ...]:
    """The audiences whose hashes a statement may meet: everyone who can see it sees these."""
    group = statement.share_group_id
    return (None,) if group is None else (group, None)


def audience_q(allowed: tuple[int | None, ...], prefix: str = "") -> Q:
    q = Q(**{f"{prefix}share_group__isnull": True})
    groups = [g for g in allowed if g is not None]
    return q | Q(**{f"{prefix}share_group_id__in": groups}) if groups else q


@dataclass
class Link:
    to: Hash
    distance: int | None = None
    query_match_percent: float | None = None
    stored_match_percent: float | None = None


@dataclass
class Placement:
    """Where one signal of one statement goes: an existing or new hash, and how far it is."""

    hash: Hash
    distance: int = 0


@dataclass
class Pending:
    hash: Hash
    creator: Statement
    links: list[Link] = field(default_factory=list)


class Clusters:
    """Union-find over cluster keys: existing cluster ids (> 0) and placeholders for new clusters
    (< 0). A merge keeps the oldest existing cluster, so cluster ids members know stay put."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}
        self.placeholders = 0

    def new(self) -> int:
        self.placeholders -= 1
        return self.placeholders

    def find(self, key: int) -> int:
        while self.parent.get(key, key) != key:
            key = self.parent[key]
        return key

    def union(self, keys: set[int]) -> int:
        roots = {self.find(k) for k in keys}
        # Oldest first: existing clusters by id, then placeholders in the order they were made.
        survivor = min(roots, key=lambda k: (0, k) if k > 0 else (1, -k))
        for root in roots - {survivor}:
            self.parent[root] = survivor
        return survivor


class FamilyPlanner:
    def __init__(self, now: Any, existing: dict[HashKey, Hash]) -> None:
        self.now = now
        self.existing = existing
        self.pending: dict[HashKey, Pending] = {}
        self.placements: dict[tuple[Any, int], Placement] = {}
        self.clusters = Clusters()
        self.cluster_key: dict[int, int] = {}  # id(Hash) -> cluster key
        self.merge_causes: dict[int, Statement] = {}
        # This batch's new videos, not in the match index yet: their frames in an index of their own,
        # keyed by position in `pending_videos`, rebuilt when a video was added since the last search.
        self.pending_videos: list[tuple[Hash, np.ndarray]] = []
        self.pending_frames: Any = None

    # -- planning -----------------------------------------------------------------------------------

    def plan(self, statements: list[Statement], key_of: Callable[[dict[str, Any]], SignalKey]) -> None:
        hash_statements = [s for s in statements if s.kind == Statement.Kind.HASH]
        new_pdq = sorted({
            key_of(sig)[1] for s in hash_statements for sig in s.signals or ()
            if sig["type"] == "pdq" and not any((*key_of(sig), a) in self.existing for a in audiences(s))
        })
        index = indexes.fresh(max_age=0) if any(
            sig["type"] in ("pdq", "vpdq") for s in hash_statements for sig in s.signals or ()) else None
        near = dict(zip(new_pdq, index.pdq_within_many(new_pdq, settings.MATCH_DISTANCE))) if new_pdq else {}
        candidates = {hash_id for found in near.values() for hash_id in found}
        stored = {h.pk: h for h in Hash.objects.filter(pk__in=candidates)} if candidates else {}
        for statement in hash_statements:
            for position, signal in enumerate(statement.signals or ()):
                key = key_of(signal)
                same = self.same_value(statement, key)
                if same is not None:
                    self.placements[(statement.id, position)] = Placement(same)
                elif signal["type"] == "pdq":
                    self.place_pdq(statement, position, key, signal, near.get(key[1], {}), stored)
                elif signal["type"] == "vpdq":
                    self.place_vpdq(statement, position, key, signal, index)
                else:
                    self.create(statement, position, key, signal, [])

    def same_value(self, statement: Statement, key: SignalKey) -> Hash | None:
        """The hash of exactly this value that the statement corroborates: its own audience's first,
        then the consortium's (a group may corroborate a consortium hash, never the reverse)."""
        for audience in audiences(statement):
            found = self.existing.get((*key, audience)) or getattr(self.pending.get((*key, audience)), "hash", None)
            if found is not None:
                return found
        return None

    def place_pdq(self, statement: Statement, position: int, key: SignalKey, signal: dict[str, Any],
                  near: dict[int, int], stored: dict[int, Hash]) -> None:
        allowed = audiences(statement)
        meets = self.meets(allowed, set(near))
        links = [Link(stored[h], distance=d) for h, d in near.items() if h in meets]
        for pending in self.pending.values():  # this batch's new hashes are not in the index yet
            if pending.hash.signal_type == "pdq" and pending.hash.share_group_id in allowed:
                distance = (int(pending.hash.value, 16) ^ int(key[1], 16)).bit_count()
                if distance <= settings.MATCH_DISTANCE:
                    links.append(Link(pending.hash, distance=distance))
        links.sort(key=lambda link: (link.distance, link.to.pk or 0))
        if links and links[0].distance <= settings.DEDUPE_DISTANCE:
            self.placements[(statement.id, position)] = Placement(links[0].to, links[0].distance)
        else:
            self.create(statement, position, key, signal, links)

    def place_vpdq(self, statement: Statement, position: int, key: SignalKey, signal: dict[str, Any],
                   index: Any) -> None:
        allowed = audiences(statement)
        rows = usable_rows(signal["frames"], quality=settings.VPDQ_FRAME_QUALITY)
        # Bounded work under the feed lock: only videos sharing several frames with this one (all of
        # them, for a video with fewer), at most VPDQ_MAX_CANDIDATES of them, those sharing most first,
        # whether published or new in this batch. A flood of long videos that share a frame or two
        # costs an index search each, not a comparison.
        need = min(settings.VPDQ_MIN_SHARED_FRAMES, len(rows))
        shared = index.frames_shared(rows)
        found = self.meets(allowed, {h for h, n in shared.items() if n >= need})
        new = {position: n for position, n in self.pending_shared(rows).items()
               if n >= need and self.pending_videos[position][0].share_group_id in allowed}
        ranked = sorted([(-shared[h], 0, h) for h in found] + [(-n, 1, position) for position, n in new.items()])
        ranked = ranked[:settings.VPDQ_MAX_CANDIDATES]
        stored = Hash.objects.in_bulk([key for _, pending, key in ranked if not pending])
        others = [self.pending_videos[key][0] if pending else stored[key] for _, pending, key in ranked]
        links, duplicate = [], None
        for other in others:
            query_percent, stored_percent = compare_rows(
                rows, usable_rows(other.frames, quality=settings.VPDQ_FRAME_QUALITY), distance=settings.VPDQ_FRAME_DISTANCE,
            )
            if min(query_percent, stored_percent) >= settings.VPDQ_DUPLICATE_PERCENT:
                if duplicate is None or min(query_percent, stored_percent) > min(
                        duplicate.query_match_percent, duplicate.stored_match_percent):
                    duplicate = Link(other, query_match_percent=query_percent, stored_match_percent=stored_percent)
            if max(query_percent, stored_percent) >= settings.VPDQ_CLUSTER_PERCENT:
                links.append(Link(other, query_match_percent=query_percent, stored_match_percent=stored_percent))
        if duplicate is not None:
            self.placements[(statement.id, position)] = Placement(duplicate.to)
        else:
            self.create(statement, position, key, signal, links)

    def create(self, statement: Statement, position: int, key: SignalKey, signal: dict[str, Any],
               links: list[Link]) -> None:
        hash_ = Hash(
            signal_type=key[0], value=key[1], frames=signal.get("frames"), quality=signal.get("quality"),
            content_type=statement.content_type, share_group_id=statement.share_group_id,
            created_at=self.now, updated_at=self.now,
        )
        # Families are unioned within one audience only: a group hash links to the consortium
        # hashes near it without joining (or merging) their families.
        linked_keys = {self.key_of_hash(link.to) for link in links
                       if link.to.share_group_id == statement.share_group_id}
        if linked_keys:
            roots = {self.clusters.find(k) for k in linked_keys}
            survivor = self.clusters.union(roots)
            for merged in roots - {survivor}:
                self.merge_causes[merged] = statement
            self.cluster_key[id(hash_)] = survivor
        else:
            self.cluster_key[id(hash_)] = self.clusters.new()
        self.pending[(*key, statement.share_group_id)] = Pending(hash_, statement, links)
        if key[0] == "vpdq":
            self.pending_videos.append((hash_, usable_rows(signal["frames"], quality=settings.VPDQ_FRAME_QUALITY)))
            self.pending_frames = None
        self.placements[(statement.id, position)] = Placement(hash_)

    def key_of_hash(self, hash_: Hash) -> int:
        return self.cluster_key[id(hash_)] if hash_.pk is None else hash_.cluster_id

    def pending_shared(self, rows: np.ndarray) -> dict[int, int]:
        """{position in pending_videos: how many of these frames match one of that video's}."""
        if not self.pending_videos:
            return {}
        if self.pending_frames is None:
            from ..signals.index import PdqIndex

            positions = [np.full(len(frames), n, dtype=np.int64) for n, (_, frames) in enumerate(self.pending_videos)]
            self.pending_frames = PdqIndex.build(np.concatenate(positions),
                                                 np.concatenate([frames for _, frames in self.pending_videos]))
        return frames_shared(self.pending_frames, rows)

    # -- audiences ----------------------------------------------------------------------------------

    @staticmethod
    def meets(allowed: tuple[int | None, ...], hash_ids: set[int]) -> set[int]:
        """The hashes among `hash_ids` a statement of these audiences may meet: hashes of those
        audiences that a statement of those audiences keeps live. A hash kept live only by another
        group's statements counts as retracted here, as it does for those who cannot see them."""
        if not hash_ids:
            return set()
        live = Corroboration.objects.filter(audience_q(allowed, "statement__"), hash_id=OuterRef("pk"),
                                            retracted_at__isnull=True)
        return set(Hash.objects.filter(audience_q(allowed), Exists(live), pk__in=hash_ids).values_list("pk", flat=True))

    # -- writing ------------------------------------------------------------------------------------

    def create_hashes(self) -> list[Hash]:
        """Create the new clusters and hashes; returns the new hashes (with ids)."""
        if not self.pending:
            return []
        roots = {self.clusters.find(self.cluster_key[id(p.hash)]) for p in self.pending.values()}
        fresh_roots = sorted((r for r in roots if r < 0), reverse=True)  # -1 first: ids in creation order
        made = insert_rows(Cluster, [{"created_at": self.now} for _ in fresh_roots], returning=["id"])
        real = dict(zip(fresh_roots, (pk for (pk,) in made)))
        for pending in self.pending.values():
            root = self.clusters.find(self.cluster_key[id(pending.hash)])
            pending.hash.cluster_id = real.get(root, root)
        # Inserted as plain rows (the ORM's bulk_create costs more than the rest of placing them).
        created = [p.hash for p in self.pending.values()]
        columns = [f for f in Hash._meta.concrete_fields if not f.primary_key]
        ids = insert_rows(Hash, [{f.name: getattr(h, f.attname) for f in columns} for h in created], returning=["id"])
        for hash_, (pk,) in zip(created, ids):
            hash_.pk, hash_._state.adding, hash_._state.db = pk, False, Hash.objects.db
        HashLink.objects.bulk_create([
            HashLink(hash=p.hash, linked_to=link.to, distance=link.distance, created_at=self.now,
                     query_match_percent=link.query_match_percent, stored_match_percent=link.stored_match_percent)
            for p in self.pending.values() for link in p.links
        ])
        return created

    def merged_clusters(self) -> dict[int, tuple[int, Statement]]:
        """Existing clusters this batch merged into another: {old id: (surviving id, the statement
        whose hash linked them)}."""
        return {
            key: (self.clusters.find(key), cause) for key, cause in self.merge_causes.items()
            if key > 0 and self.clusters.find(key) > 0
        }


def live_statements(hash_ids: list[int], audience: dict[str, tuple[int, int | None]] | None = None
                    ) -> dict[int, list[str]]:
    """Each hash's live corroborating statements, oldest first. With `audience`, who made each and
    for whom ({statement id: (member, share group)}) is added to it from the same read."""
    live: dict[int, list[str]] = {pk: [] for pk in hash_ids}
    if not live:
        return live  # no read (a batch of new values finds no near duplicate to load)
    rows = Corroboration.objects.filter(AnyOf(F("hash_id"), hash_ids), retracted_at__isnull=True).order_by("id")
    if audience is None:
        for hash_id, statement_id in rows.values_list("hash_id", "statement_id"):
            live[hash_id].append(str(statement_id))
        return live
    for hash_id, statement_id, member_id, share_group_id in rows.values_list(
            "hash_id", "statement_id", "member_id", "statement__share_group_id"):
        sid = str(statement_id)
        live[hash_id].append(sid)
        audience[sid] = (member_id, share_group_id)
    return live
