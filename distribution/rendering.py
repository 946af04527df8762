"""What a subscription receives: exactly the events `hashes.selectors.render_event` yields for its
member's Viewer, narrowed by its filters.

Fifty subscriptions reading the same events would render each one fifty times. `render_event`'s
answer depends on the viewer only through which of the event's statements it sees (`Viewer.sees`,
the one visibility rule) and which of the hash's links it may see (`visible_links`), so each event
is rendered and serialised once per distinct answer to those questions and shared by every
subscription that gives the same answers; tests/distribution/test_rendering.py checks the shortcut
against calling render_event directly. Statements are only ever read through `statement_facts` for
a viewer allowed to see them. The caches are per process, bounded, and keyed by the event's stable
id, never by seq alone."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from django.db.models import F

from consortium.db import AnyOf
from hashes.models import Event
from hashes.selectors import (EventRow, StatementFacts, corroborating_members, event_view, events_at, statement_facts,
                              visible_links)
from hashes.visibility import Viewer, viewers_for_ids
from members.models import Member

from .models import Subscription


@dataclass(frozen=True)
class Filters:
    signal_types: frozenset[str] = frozenset()
    labels: frozenset[str] = frozenset()
    incident_only: bool = False
    min_corroboration: int = 1
    include_retractions: bool = True
    exclude_disputed: bool = False

    @classmethod
    def of(cls, subscription: Subscription) -> Filters:
        return cls(frozenset(subscription.signal_types), frozenset(subscription.labels), subscription.incident_only,
                   subscription.min_corroboration, subscription.include_retractions, subscription.exclude_disputed)


@dataclass(frozen=True)
class LoadedEvent:
    event: EventRow
    refs: tuple[str, ...]  # every statement the event mentions (before, after, cause), in a fixed order


@dataclass(frozen=True)
class Rendered:
    """One event as some viewers see it, serialised, with what the filters look at."""

    seq: int
    occurred_at: str
    fragment: bytes
    type: str
    signal_type: str
    labels: frozenset[str]  # the visible statements' and an administrator's, before and after the change
    incident: bool  # a visible statement of the hash, or the cause, names an incident
    corroboration: int  # members with visible live statements before or after the change, whichever is more
    held: bool = False  # a dispute the viewer sees is open, and this event did not open it

    def passes(self, filters: Filters) -> bool:
        """Retractions carry the labels and count the hash had, so a receiver that got a hash also
        gets its retraction; with a minimum corroboration a hash may first arrive as hash.updated."""
        if filters.signal_types and self.signal_type not in filters.signal_types:
            return False
        if filters.labels and not self.labels & filters.labels:
            return False
        if filters.incident_only and not self.incident:
            return False
        if self.corroboration < filters.min_corroboration:
            return False
        if filters.exclude_disputed and self.held:
            return False
        return filters.include_retractions or self.type != Event.Type.RETRACTED


class _Bounded:
    """A dict that forgets its oldest entries once it holds more than `capacity` entries or about
    `max_bytes` of data (as weighed by the caller); shared by a worker's threads. Statements and
    events can be large (a vPDQ statement may be half a megabyte), so bytes matter, not entries."""

    def __init__(self, capacity: int, max_bytes: int = 1 << 62) -> None:
        self.capacity, self.max_bytes = capacity, max_bytes
        self._items: dict[Any, tuple[Any, int]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Any, default: Any = None) -> Any:
        item = self._items.get(key)
        return default if item is None else item[0]

    def put(self, key: Any, value: Any, weight: int = 0) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            while self._items and (len(self._items) >= self.capacity or self._bytes + weight > self.max_bytes):
                self._bytes -= self._items.pop(next(iter(self._items)))[1]
            self._items[key] = (value, weight)
            self._bytes += weight

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


_MISSING = object()
PERCEPTUAL = frozenset({"pdq", "vpdq"})
MiB = 1 << 20
# Per worker process, at most about 350 MiB (windows and selections mostly hold what the event and
# rendering caches hold too), far less in practice.
_events = _Bounded(20_000, 48 * MiB)
_statements = _Bounded(50_000, 64 * MiB)
_rendered = _Bounded(20_000, 64 * MiB)
_windows = _Bounded(64, 48 * MiB)
_alike = _Bounded(5_000)
_selections = _Bounded(256, 64 * MiB)
_bodies = _Bounded(32, 32 * MiB)
_cuts = _Bounded(256)


def viewers_for(members: Sequence[Member]) -> dict[int, Viewer]:
    """Viewer.for_member for many members in one query: each member with its sharing groups."""
    return viewers_for_ids(member.pk for member in members)


def clear_caches() -> None:
    for cache in (_events, _statements, _rendered, _windows, _alike, _selections, _bodies, _cuts):
        cache.clear()


def _load_events(seqs: Sequence[int]) -> dict[UUID, LoadedEvent]:
    loaded = {}
    for event in events_at(seqs):  # plain SQL, as the feed reads them: no model instances
        event_id = UUID(event.event_id)
        loaded[event_id] = LoadedEvent(event, event.refs())
        _events.put(event_id, loaded[event_id], _weight(loaded[event_id]))
    return loaded


def _weight(loaded: LoadedEvent) -> int:
    frames = loaded.event.hash.frames
    return 1024 + 64 * len(loaded.refs) + (100 * len(frames) if isinstance(frames, list) else 0)


def loaded_events(rows: Sequence[tuple[int, UUID]]) -> list[LoadedEvent]:
    """The events of (seq, event id) rows, from the cache or the database, in the rows' order."""
    found = {event_id: _events.get(event_id) for _, event_id in rows}
    missing = [seq for seq, event_id in rows if found[event_id] is None]
    if missing:
        found.update(_load_events(missing))
    return [found[event_id] for _, event_id in rows]


def _learn(ids: set[str], viewer: Viewer) -> dict[str, StatementFacts]:
    """The statements among `ids`, as known to the process: from the cache, or read (for this viewer,
    through statement_facts) when missing. Visibility is decided from this answer, never from the
    cache alone: the cache is bounded and shared by threads, so an entry can go at any time.
    Statements this viewer may not see are never read, so they are absent unless another viewer read
    them; the caller still checks each with `Viewer.sees`."""
    known: dict[str, StatementFacts] = {}
    missing = set()
    for statement_id in ids:
        cached = _statements.get(statement_id)
        if cached is None:
            missing.add(statement_id)
        else:
            known[statement_id] = cached
    if not missing:
        return known
    for statement_id, fact in statement_facts(missing, viewer).items():
        known[statement_id] = fact
        _statements.put(statement_id, fact, 512 + len(fact.raw))
    return known


def render_all(events: Sequence[LoadedEvent], viewer: Viewer) -> list[Rendered | None]:
    """Each event as `render_event` renders it for this viewer (None: nothing it may see changed)."""
    return _render_known(events, viewer, _learn({ref for loaded in events for ref in loaded.refs}, viewer))


def _render_known(events: Sequence[LoadedEvent], viewer: Viewer,
                  known: dict[str, StatementFacts]) -> list[Rendered | None]:
    # Only perceptual hashes are linked into families (by distance or match percentage).
    linkable = {loaded.event.hash_id for loaded in events if loaded.event.hash.signal_type in PERCEPTUAL}
    links = visible_links(viewer, linkable) if linkable else {}
    return [_render_cached(loaded, viewer, links.get(loaded.event.hash_id) or [], known) for loaded in events]


def _render_cached(loaded: LoadedEvent, viewer: Viewer, links: list[dict[str, Any]],
                   known: dict[str, StatementFacts]) -> Rendered | None:
    visible: dict[str, StatementFacts] = {}
    mask = 0
    for bit, ref in enumerate(loaded.refs):
        statement = known.get(ref)
        if statement is not None and viewer.sees(share_group_id=statement.share_group_id,
                                                 member_id=statement.member_id):
            visible[ref] = statement
            mask |= 1 << bit
    key = (loaded.event.event_id, mask, json.dumps(links, sort_keys=True) if links else "")
    cached = _rendered.get(key, _MISSING)
    if cached is not _MISSING:
        return cached
    result = _render(loaded.event, viewer, visible, links)
    _rendered.put(key, result, 256 + (len(result.fragment) if result is not None else 0))
    return result


def _render(event: EventRow, viewer: Viewer, visible: dict[str, StatementFacts],
            links: list[dict[str, Any]]) -> Rendered | None:
    view = event_view(event, viewer, visible, {event.hash_id: links})
    if view is None:
        return None
    body, before, after = view.body, view.before, view.after
    return Rendered(
        seq=event.seq,
        occurred_at=body["occurred_at"],
        fragment=_json(body),
        type=body["type"],
        signal_type=body["hash"]["signal_type"],
        labels=frozenset(label for f in (*before, *after) for label in f.labels).union(
            event.labels_override or (), event.labels_override_before or ()),
        incident=any(fact.incident_id is not None for fact in visible.values()),
        corroboration=max(corroborating_members(before), corroborating_members(after)),
        held=is_held(event, body["type"], body["hash"]["dispute"]),
    )


def _json(body: dict[str, Any]) -> bytes:
    """Compact JSON in UTF-8. orjson, about ten times faster than the standard library on these
    bodies (most of an event's rendering), does not escape non-ASCII characters; a receiver
    parses the same values either way."""
    try:
        return orjson.dumps(body)
    except TypeError:  # a value orjson does not take (none of the feed's are)
        return json.dumps(body, separators=(",", ":")).encode("utf-8")


def is_held(event: Event | EventRow, kind: str, dispute: dict[str, Any] | None) -> bool:
    """What `exclude_disputed` holds back: events of a hash while the dispute the viewer sees on it is
    open, except the event that opened it (so the receiver learns the hash is contested) and a
    retraction (a receiver that holds the hash must always learn that it went)."""
    if dispute is None or dispute["state"] != "open" or kind == Event.Type.RETRACTED:
        return False
    return not (event.change == "dispute" and event.dispute_id == dispute["id"])


def _seen_alike_by_everyone(events: Sequence[LoadedEvent], known: dict[str, StatementFacts]) -> bool:
    """Whether every viewer sees these events the same way: each statement they mention is shared
    with the whole consortium, and no hash is perceptual (links depend on what else a viewer sees).
    A statement this viewer may not see was never learnt, so it counts as not shared."""
    for loaded in events:
        if loaded.event.hash.signal_type in PERCEPTUAL:
            return False
        for ref in loaded.refs:
            statement = known.get(ref)
            if statement is None or statement.share_group_id is not None:
                return False
    return True


# The last event of a range, as a claim has read it: (after, through) -> (seq, event id) or None.
LastRows = dict[tuple[int, int], tuple[int, UUID] | None]


def _last_row(after: int, through: int, seen: LastRows | None = None) -> tuple[int, UUID] | None:
    """The last event in (after, through]. Not cached by seq across claims: only an event id names a
    window for good (a database restored to an earlier point reuses seqs). Within one claim
    (`seen`), subscriptions in step ask the same question and take the first answer: events are
    appended in seq order, so it is the answer as of that moment for every one of them."""
    if seen is not None and (after, through) in seen:
        return seen[(after, through)]
    last = (Event.objects.filter(seq__gt=after, seq__lte=through).order_by("-seq")
            .values_list("seq", "event_id").first())
    if seen is not None:
        seen[(after, through)] = last
    return last


def _select(window: tuple[int, int, UUID], viewer: Viewer, filters: Filters) -> tuple[tuple, tuple[Rendered, ...]]:
    """The events in (after, last] this viewer receives through these filters. The log is
    append-only and seqs become visible in order, so `window` (after, last seq, last event id)
    names those events for good; subscriptions whose viewers see them alike share one answer,
    which comes with a key naming it."""
    alike = _alike.get(window)
    if alike:
        key = (window, "everyone", filters)
        cached = _selections.get(key)
        if cached is not None:
            return key, cached
    events = _windows.get(window)
    if events is None:
        rows = list(Event.objects.filter(seq__gt=window[0], seq__lte=window[1]).order_by("seq")
                    .values_list("seq", "event_id"))
        events = loaded_events(rows)
        _windows.put(window, events, sum(_weight(loaded) for loaded in events))
    known = _learn({ref for loaded in events for ref in loaded.refs}, viewer)
    if alike is None:
        alike = _seen_alike_by_everyone(events, known)
        _alike.put(window, alike)
    key = (window, "everyone" if alike else viewer, filters)
    cached = _selections.get(key)
    if cached is None:
        cached = tuple(r for r in _render_known(events, viewer, known) if r is not None and r.passes(filters))
        _selections.put(key, cached, sum(256 + len(r.fragment) for r in cached))
    return key, cached


@dataclass(frozen=True)
class Batch:
    events: tuple[Rendered, ...]
    scanned_to: int  # the last seq looked at: the cursor may move here once `events` are acknowledged
    key: tuple | None = None  # names `events` for the body cache


def next_batch(viewer: Viewer, filters: Filters, *, after: int, size: int, windows: int, max_bytes: int,
               through: int | None = None, seen: LastRows | None = None) -> Batch:
    """The next batch after `after` (and up to `through`): the events this viewer receives in the
    first window of `size` seqs (windows are aligned on multiples of `size`) that has any, looking
    through at most `windows` windows, and cut to about `max_bytes` of JSON (never below one event).

    Aligned windows put subscriptions that are in step on the same boundaries, so they share one
    selection and one body; a subscription that fell behind rejoins the others at a boundary.
    Subscriptions woken together get the same `through`, so they stop at the same seq as well, and
    one claim (`seen`) reads each window's last event once for all of them."""
    cursor = after
    for _ in range(windows):
        end = (cursor // size + 1) * size
        if through is not None:
            end = min(end, through)
            if end <= cursor:
                break
        last = _last_row(cursor, end, seen)
        if last is None:
            break
        key, events = _select((cursor, *last), viewer, filters)
        cursor = last[0]
        if events:
            return _cut(Batch(events, cursor, key), max_bytes)
        if cursor < end:
            break  # reached the head of the feed
    return Batch((), cursor)


def _cut(batch: Batch, max_bytes: int) -> Batch:
    """The batch's first events up to about `max_bytes` (at least one); counted once per selection."""
    taken = _cuts.get((batch.key, max_bytes))
    if taken is None:
        size, taken = 0, 0
        for event in batch.events:
            size += len(event.fragment) + 1
            if taken and size > max_bytes:
                break
            taken += 1
        _cuts.put((batch.key, max_bytes), taken)
    if taken == len(batch.events):
        return batch
    return Batch(batch.events[:taken], batch.events[taken - 1].seq, batch.key + (taken,))


def range_batch(viewer: Viewer, filters: Filters, *, after: int, through: int, seen: LastRows | None = None) -> Batch:
    """The events in (after, through] this viewer receives now: a retried batch, rendered again."""
    last = _last_row(after, through, seen)
    if last is None:
        return Batch((), through)
    key, events = _select((after, *last), viewer, filters)
    return Batch(events, through, key)


def load_seqs(seqs: Sequence[int]) -> list[LoadedEvent]:
    return loaded_events(list(Event.objects.filter(AnyOf(F("seq"), list(seqs))).order_by("seq")
                              .values_list("seq", "event_id")))


def events_body(*, lane: str, events: Sequence[Rendered], key: tuple | None = None) -> bytes:
    """`{"type": "hash.events", "timestamp", "data": {"events", "first_seq", "last_seq", ...}}`,
    assembled from the events' serialised fragments. The timestamp is when the last event occurred,
    so the same events make the same bytes: a retry sends exactly what the first attempt sent, and
    subscriptions in step share one body."""
    cached = _bodies.get((key, lane)) if key is not None else None
    if cached is not None:
        return cached
    meta = json.dumps({"lane": lane, "first_seq": events[0].seq, "last_seq": events[-1].seq, "count": len(events)},
                      separators=(",", ":"))
    body = b"".join([
        b'{"type":"hash.events","timestamp":', json.dumps(events[-1].occurred_at).encode(), b',"data":',
        meta[:-1].encode(), b',"events":[', b",".join(e.fragment for e in events), b"]}}",
    ])
    if key is not None:
        _bodies.put((key, lane), body, len(body))
    return body


def ping_body(*, subscription_id: str, timestamp: datetime) -> bytes:
    return json.dumps({"type": "ping", "timestamp": timestamp.isoformat(), "data": {"subscription": subscription_id}},
                      separators=(",", ":")).encode("utf-8")
