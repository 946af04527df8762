"""Every read of the TAXII collections. A collection is one audience's part of what the asking member
may see (the visibility rule narrowed with Viewer.within), and its indicators are built only from
feed events as hashes.selectors renders them for that viewer: nothing here reads a statement,
a hash or a corroboration except through the viewer's rule.

Positions: a collection lists the server's own objects first (positions -k to -1, k of them), then
one version per feed event the reader sees change its hash (position: the event's seq). A page
examines a window of positions; `next` is the window's end, or, on a full page, its last version
(or the position just before the version that did not fit), so paging resumes after it and never
skips an object; the events the reader may not see are examined and passed over, as the feed does.
Non-interference: which positions a page examines, and so `next` and `more`, never depend on what
the reader may not see, whatever the filters: a window is a range of seqs, whichever hashes its
events are about, and a filter on ids is narrowed to what the reader sees first (indicator_span)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable

from django.conf import settings
from django.db.models import QuerySet

from consortium.api.errors import NotFound
from hashes import lives
from hashes.models import Corroboration, Event
from hashes.selectors import FEED_SCAN_FACTOR, StatementFacts, render_event, statement_facts, visible_facts, visible_links
from hashes.visibility import Viewer, visible_hashes
from members.models import SharingGroup

from . import stix

VERSION_KEYWORDS = ("first", "last", "all")


@dataclass(frozen=True)
class Collection:
    id: str
    share_group_id: int | None
    alias: str
    title: str
    description: str


def consortium_collection() -> Collection:
    return Collection(
        id=stix.collection_id(None), share_group_id=None, alias="consortium", title="Consortium",
        description="Hashes shared with the whole consortium: the same for every member.",
    )


def group_collection(group: SharingGroup) -> Collection:
    return Collection(
        id=stix.collection_id(group.pk), share_group_id=group.pk, alias=group.slug, title=group.name,
        description=f"What the members of the sharing group {group.slug} shared with it.",
    )


def collections_for(*, viewer: Viewer) -> list[Collection]:
    """The consortium's collection and one per sharing group the member belongs to."""
    groups = SharingGroup.objects.filter(pk__in=viewer.group_ids).order_by("slug")
    return [consortium_collection(), *(group_collection(g) for g in groups)]


def collection_get(*, viewer: Viewer, collection_id: str) -> tuple[Collection, Viewer]:
    """A collection the member may read, and what the member sees of it; any other id, a group's it
    is outside included, is unknown."""
    for collection in collections_for(viewer=viewer):
        if collection.id == collection_id:
            return collection, viewer.within(collection.share_group_id)
    raise NotFound("No collection with this id is available to you.")


# --- Filters and pages -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ObjectFilter:
    """TAXII's match[...] filters. None: no filter on that property."""

    ids: frozenset[str] | None = None
    types: frozenset[str] | None = None
    versions: frozenset[str] = frozenset({"last"})  # first, last, all
    version_times: frozenset[datetime] = frozenset()
    spec_versions: frozenset[str] | None = None

    def wants_type(self, type_: str) -> bool:
        return self.types is None or type_ in self.types

    def wants_id(self, stix_id: str) -> bool:
        return self.ids is None or stix_id in self.ids

    def wants_version(self, modified: datetime, *, first: bool, last: bool) -> bool:
        return ("all" in self.versions or (first and "first" in self.versions) or (last and "last" in self.versions)
                or modified in self.version_times)


@dataclass(eq=False)
class Entry:
    """One version of one object, as a page lists it."""

    object: dict[str, Any]
    date_added: datetime
    version: datetime
    size: int

    @property
    def id(self) -> str:
        return self.object["id"]


@dataclass
class Page:
    entries: list[Entry]
    more: bool
    next: str | None

    @property
    def date_added_first(self) -> datetime | None:
        return self.entries[0].date_added if self.entries else None

    @property
    def date_added_last(self) -> datetime | None:
        return self.entries[-1].date_added if self.entries else None


def json_size(obj: dict[str, Any]) -> int:
    return len(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode())


def server_objects() -> list[dict[str, Any]]:
    return stix.server_objects(settings.TAXII_TLP)


def event_date_added(seq: int, occurred_at: datetime) -> datetime:
    return stix.date_added(occurred_at, seq)


def server_objects_added() -> datetime:
    """The server's own objects' date_added: before every event's."""
    first = Event.objects.order_by("seq").values_list("seq", "occurred_at").first()
    if first is None:
        return stix.STATIC_CREATED
    return min(stix.STATIC_CREATED, event_date_added(*first) - timedelta(microseconds=1))


def position_after(moment: datetime) -> int:
    """The position of the last object added at or before `moment`: listing `added_after` it resumes
    there. date_added strictly increases with seq, so a binary search on seq finds it."""
    if moment < server_objects_added():
        return -len(server_objects()) - 1
    first = Event.objects.order_by("seq").values_list("seq", "occurred_at").first()
    if first is None or event_date_added(*first) > moment:
        return 0
    last = Event.objects.order_by("-seq").values_list("seq", "occurred_at").first()
    if event_date_added(*last) <= moment:
        return last[0]
    low, high = first[0], last[0]  # low is added at or before `moment`; everything from high on, after it
    while high - low > 1:
        middle = (low + high) // 2
        row = Event.objects.filter(seq__gte=middle, seq__lt=high).order_by("seq").values_list("seq", "occurred_at").first()
        if row is not None and event_date_added(*row) <= moment:
            low = row[0]
        else:
            high = middle
    return low


class LifeBook:
    """The lives of hashes in one collection (hashes.lives: each run of a hash's life there is an
    indicator of its own), as far as the rows a page shows need them: each corroboration recorded
    its life when it was published, so a page reads one row per version it lists, however long its
    hashes' histories. A hash with rows published before migration 0014's backfill reached them is
    worked out from its history, as every page did before."""

    def __init__(self, viewer: Viewer) -> None:
        if viewer.audience is None:
            raise ValueError("lives are a collection's: the viewer must be narrowed to one audience")
        self.viewer = viewer
        self.known: dict[tuple[int, str], tuple[int, datetime]] = {}
        self.history: dict[int, dict[str, tuple[int, datetime]]] = {}

    def visible(self) -> QuerySet[Corroboration]:
        return Corroboration.objects.filter(self.viewer.statement_q("statement__"))

    def load(self, pairs: set[tuple[int, str]]) -> None:
        """Read the lives of these (hash id, statement id): the statements the page's versions name."""
        wanted = {p for p in pairs if p not in self.known and p[0] not in self.history}
        if not wanted:
            return
        for hash_id, statement_id, life, seq, began in self.visible().filter(
                hash_id__in={h for h, _ in wanted}, statement_id__in={s for _, s in wanted}).values_list(
                "hash_id", "statement_id", "life", "life_seq", "life_began"):
            if life is not None and (hash_id, str(statement_id)) in wanted:
                self.known[(hash_id, str(statement_id))] = (life, life_start(seq, began))
        for hash_id in {h for h, s in wanted if (h, s) not in self.known}:
            self.from_history(hash_id)

    def from_history(self, hash_id: int) -> dict[str, tuple[int, datetime]]:
        if hash_id not in self.history:
            found = lives.compute(Corroboration.objects, Event.objects, [hash_id], self.viewer.statement_q("statement__"))
            self.history[hash_id] = {sid: (life, life_start(seq, began))
                                     for group in found.values() for sid, (life, seq, began) in group.items()}
        return self.history[hash_id]

    def of(self, hash_id: int, statements: list[StatementFacts], fallback: datetime) -> tuple[int, datetime]:
        """The life of the version an event is, named by the reader's statements it shows (all of
        one life: they were live together): (its number, when it began)."""
        for fact in statements:
            found = self.known.get((hash_id, fact.id)) or self.history.get(hash_id, {}).get(fact.id)
            if found is not None:
                return found
        return max(self.count(hash_id) - 1, 0), fallback

    def count(self, hash_id: int) -> int:
        """How many lives the hash has had in the collection: its last one's number + 1, read down
        the index of lives (corroboration_life)."""
        rows = self.visible().filter(hash_id=hash_id)
        if rows.filter(life__isnull=True).exists():
            return len({life for life, _ in self.from_history(hash_id).values()})
        last = list(rows.filter(life__isnull=False).order_by("-life").values_list("life", flat=True)[:1])
        return last[0] + 1 if last else 0


def life_start(seq: int | None, began: datetime) -> datetime:
    """When a life began: the date_added of the event that began it (without one, `began` itself)."""
    return began if seq is None else event_date_added(seq, began)


@dataclass
class Wanted:
    """Which indicators a filter on ids leaves: None, any; otherwise these lives of these hashes."""

    lives: dict[int, set[int]] | None

    @property
    def hash_ids(self) -> list[int] | None:
        return None if self.lives is None else sorted(self.lives)

    def wants(self, hash_id: int, life: int) -> bool:
        return self.lives is None or life in self.lives.get(hash_id, ())


def wanted_indicators(collection: Collection, filters: ObjectFilter) -> Wanted | None:
    """None when the filters leave no indicator to look for."""
    if not filters.wants_type("indicator"):
        return None
    if filters.ids is None:
        return Wanted(None)
    lives: dict[int, set[int]] = {}
    for stix_id in filters.ids:
        parsed = stix.parse_indicator_id(collection.id, stix_id)
        if parsed is not None:
            lives.setdefault(parsed[0], set()).add(parsed[1])
    return Wanted(lives) if lives else None


def object_exists(*, collection: Collection, viewer: Viewer, stix_id: str) -> bool:
    """Whether the collection holds an object with this id, for this reader (any version of it)."""
    if any(obj["id"] == stix_id for obj in server_objects()):
        return True
    parsed = stix.parse_indicator_id(collection.id, stix_id)
    if parsed is None:
        return False
    hash_id, life = parsed
    if not visible_hashes(viewer).filter(pk=hash_id).exists():
        return False
    return life < LifeBook(viewer).count(hash_id)


@dataclass(frozen=True)
class Span:
    """Where the versions a filter on ids wants can be: events of `hash_ids`, after position
    `after` and up to `through` (None: to the feed's end). Derived only from what the reader may
    see (the lives of the hashes in its collection), never from events it may not. Without a
    filter on ids: every hash (None), the whole feed."""

    hash_ids: list[int] | None
    after: int
    through: int | None


# A filter on more indicators than this is not narrowed to their lives' span (a few indexed reads
# each), only to the hashes the reader may see.
SPAN_MAX_LIVES = 20


def indicator_span(viewer: Viewer, wanted: Wanted) -> Span | None:
    """None: no version of the indicators wanted is, or ever was, in the collection (a hash the
    reader cannot see is as absent as one that does not exist). A life's versions are the events
    from the one that began it to the last before the next life began (between lives the hash is
    retracted for the reader: no event shows it anything); each corroboration of a life recorded
    where it began, so one row of each life wanted, and of the one after, tells the span."""
    assert wanted.lives is not None
    visible = sorted(visible_hashes(viewer).filter(pk__in=wanted.hash_ids).values_list("pk", flat=True))
    if not visible:
        return None
    asked = [(h, life) for h in visible for life in sorted(wanted.lives[h])]
    rows = Corroboration.objects.filter(viewer.statement_q("statement__"))
    if len(asked) > SPAN_MAX_LIVES or any(rows.filter(hash_id=h, life__isnull=True).exists() for h in visible):
        return Span(visible, 0, None)  # (rows the backfill of migration 0014 has not reached: all of it)

    def start(hash_id: int, life: int) -> list[int | None]:
        """[the seq of the event that began the life] if it has been, else []."""
        return list(rows.filter(hash_id=hash_id, life=life).values_list("life_seq", flat=True)[:1])

    starts = {key: start(*key) for key in asked}
    found = [key for key in asked if starts[key]]
    if not found:
        return None
    firsts = [starts[key][0] for key in found]
    after = 0 if None in firsts else min(firsts) - 1
    ends = [(start(h, life + 1) or [None])[0] for h, life in found]
    through = None if None in ends else max(ends) - 1
    return Span(sorted({h for h, _ in found}), after, through)


def collection_page(*, collection: Collection, viewer: Viewer, after: int | None, added_after: datetime | None,
                    limit: int, filters: ObjectFilter, max_bytes: int | None = None) -> Page:
    """Object versions of the collection in date_added order, from position `after` (exclusive) and
    `added_after`, at most `limit` of them and, past the first, about `max_bytes` of JSON.

    A request examines the events of at most `limit` x FEED_SCAN_FACTOR positions of the feed (seqs:
    a window that does not depend on which hashes the events are about); it then answers with what
    it found, `more` and a `next` that resumes where it stopped. What the reader may not see decides
    nothing it is told: a filter on ids looks only at hashes it may see, in the lives it may see,
    `next` is the end of a window or a position just before a version it is shown, and `more` says
    whether the feed (or the wanted lives' span) goes on past `next`."""
    max_bytes = settings.TAXII_MAX_BYTES if max_bytes is None else max_bytes
    statics = server_objects()
    start = -len(statics) - 1 if after is None else after
    if added_after is not None:
        start = max(start, position_after(added_after))
    if filters.spec_versions is not None and stix.SPEC_VERSION not in filters.spec_versions:
        return Page([], False, None)
    scan = PageScan(collection=collection, viewer=viewer, limit=limit, max_bytes=max_bytes, filters=filters,
                    cursor=start)

    statics_added = server_objects_added()
    for index, obj in enumerate(statics):
        position = index - len(statics)
        if position <= scan.cursor:
            continue
        if filters.wants_type(obj["type"]) and filters.wants_id(obj["id"]):
            version = stix.parse_timestamp(stix.object_version(obj))
            if filters.wants_version(version, first=True, last=True) and not scan.add(
                    Entry(obj, statics_added, version, json_size(obj))):
                scan.cursor = position - 1  # this object opens the next page
                break
        scan.cursor = position
        if scan.full:
            break

    more = scan.cursor < 0 and any(i - len(statics) > scan.cursor for i in range(len(statics)))
    wanted = wanted_indicators(collection, filters)
    span = None
    if wanted is not None:
        span = Span(None, 0, None) if wanted.lives is None else indicator_span(viewer, wanted)
    if span is not None:
        end = feed_end() if span.through is None else span.through
        if not scan.full:
            scan.cursor = max(scan.cursor, span.after)
            scan.events(wanted, span.hash_ids, end)
        scan.settle_last_versions(end)
        more = more or max(scan.cursor, span.after) < end
    return Page(scan.entries, more, str(scan.cursor) if more else None)


def feed_end() -> int:
    """The last position of the feed: its last event's seq."""
    return Event.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


@dataclass
class PageScan:
    collection: Collection
    viewer: Viewer
    limit: int
    max_bytes: int
    filters: ObjectFilter
    cursor: int
    entries: list[Entry] = field(default_factory=list)
    size: int = 0
    full: bool = False
    # Indicator versions kept only if they turn out to be the latest of their indicator:
    # hash id -> the entry (match[version]=last).
    last_candidates: dict[int, Entry] = field(default_factory=dict)
    lives: LifeBook | None = None

    def add(self, entry: Entry) -> bool:
        """Add an entry unless the page has no room for it left (then it is full)."""
        if self.entries and self.size + entry.size > self.max_bytes:
            self.full = True
            return False
        self.entries.append(entry)
        self.size += entry.size
        if len(self.entries) >= self.limit:
            self.full = True
        return True

    def window(self, after: int, end: int, hash_ids: list[int] | None) -> Iterable[list[Event]]:
        """The events (of `hash_ids`, if given) at positions after `after`, up to a page's window
        (`limit` x FEED_SCAN_FACTOR positions) and `end`, in chunks."""
        through = min(after + self.limit * FEED_SCAN_FACTOR, end)
        while after < through:
            events = Event.objects.filter(seq__gt=after, seq__lte=through)
            if hash_ids is not None:
                events = events.filter(hash_id__in=hash_ids)
            chunk = list(events.select_related("hash").order_by("seq")[:max(self.limit, 100)])
            if not chunk:
                return
            yield chunk
            after = chunk[-1].seq

    def events(self, wanted: Wanted, hash_ids: list[int] | None, end: int) -> None:
        """Take the versions the filters want from the window after the cursor. The cursor moves to
        the window's end, or, should the page fill, to the last version taken, or just before the
        one that did not fit: never to an event the reader may not see."""
        if self.lives is None:
            self.lives = LifeBook(self.viewer)
        through = min(self.cursor + self.limit * FEED_SCAN_FACTOR, end)
        for chunk in self.window(self.cursor, end, hash_ids):
            facts = statement_facts({i for e in chunk for i in e.refs()}, self.viewer)
            links = visible_links(self.viewer, {e.hash_id for e in chunk})
            shown = []
            for event in chunk:
                rendered = render_event(event, self.viewer, facts, links)
                if rendered is not None:
                    statements = (visible_facts(self.viewer, event.statements_after, facts)
                                  or visible_facts(self.viewer, event.statements_before, facts))
                    shown.append((event, rendered, statements))
            loaded = 0
            for index, (event, rendered, statements) in enumerate(shown):
                if index >= loaded:  # the lives of as many versions as the page has room for, at a time
                    loaded = index + max(self.limit - len(self.entries), 1)
                    self.lives.load({(e.hash_id, facts_[0].id) for e, _, facts_ in shown[index:loaded] if facts_})
                if not self.take(event, rendered, statements, wanted):
                    self.cursor = event.seq - 1  # full: this version opens the next page
                    return
                if self.full:
                    self.cursor = event.seq
                    return
        self.cursor = max(self.cursor, through)

    def take(self, event: Event, rendered: dict[str, Any], statements: list[StatementFacts], wanted: Wanted) -> bool:
        """Add the indicator version this event is, if the filters want it; False if it did not fit."""
        earlier = self.last_candidates.pop(event.hash_id, None)
        if earlier is not None:  # kept as its indicator's latest version, which this one supersedes
            self.drop(earlier)
        added = event_date_added(event.seq, event.occurred_at)
        life, began = self.lives.of(event.hash_id, statements, event.occurred_at)
        stix_id = stix.indicator_id(self.collection.id, event.hash_id, life)
        if not wanted.wants(event.hash_id, life) or not self.filters.wants_id(stix_id):
            return True
        revoked = rendered["hash"]["state"] == "retracted"
        # A revoked version is the last of its indicator: whatever comes later is a new indicator.
        keep_if_last = not self.filters.wants_version(added, first=rendered["type"] == "hash.added", last=revoked)
        if keep_if_last and "last" not in self.filters.versions:
            return True
        obj = stix.indicator(stix_id=stix_id, created=began, modified=added, event=rendered, tlp=settings.TAXII_TLP)
        if not self.add(Entry(obj, added, added, json_size(obj))):
            return False
        if keep_if_last:
            self.last_candidates[event.hash_id] = self.entries[-1]
        return True

    def drop(self, entry: Entry) -> None:
        self.entries.remove(entry)
        self.size -= entry.size

    def settle_last_versions(self, end: int) -> None:
        """Drop each version kept only as its indicator's latest that a later event, past this page,
        supersedes (one the reader sees change the hash). Looked ahead for as many positions as a
        page examines: beyond that a version is kept, and the later one follows on a later page."""
        pending = dict(self.last_candidates)
        if not pending:
            return
        for chunk in self.window(self.cursor, end, list(pending)):
            facts = statement_facts({i for e in chunk for i in e.refs()}, self.viewer)
            for event in chunk:
                if event.hash_id in pending and render_event(event, self.viewer, facts) is not None:
                    self.drop(pending.pop(event.hash_id))
            if not pending:
                return
