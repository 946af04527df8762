"""Every read about statements, hashes and the feed, always scoped by the asking member's Viewer."""

from __future__ import annotations

import heapq
import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import orjson
from django.conf import settings
from django.db import connection
from django.db.models import Count, Max, Min, Prefetch, Q, QuerySet

from consortium.api.errors import DomainError, NotFound
from consortium.db import converter, read_by_ids, read_prepared
from members.models import Member
from suppression.selectors import suppressed_hash_ids

from .matching import indexes
from .services.feedback import load_governance
from .models import Corroboration, Dispute, Event, Hash, SignalType, Statement, of_values
from .signals.parse import MatchQuery
from .signals.vpdq import compare_rows, usable_rows
from .visibility import Viewer, visible_hashes

# How far one feed request scans for events the reader may see before it answers with what it has.
FEED_SCAN_FACTOR = 10


@dataclass(frozen=True)
class StatementFacts:
    """What the feed needs of one statement, loaded once per page."""

    id: str
    jti: str
    kind: str  # "hash" or "retract", as the signed payload says
    member_id: int
    member_slug: str
    member_kind: str
    share_group_id: int | None
    content_type: str
    raw: str
    labels: tuple[str, ...]
    verdict: str = ""  # feedback statements: agree, disagree or seen
    incident_id: int | None = None


def statement_facts(ids: Iterable[str], viewer: Viewer) -> dict[str, StatementFacts]:
    """The statements among `ids` that the viewer may see (the others are not even read: the
    viewer's rule, Viewer.statement_sql, is the read's condition).

    Plain SQL and tuples, not a queryset and model instances: a feed page reads thousands of
    statements, named by one array parameter, and a prepared read on PostgreSQL."""
    keys = {str(i) for i in ids}
    if not keys:
        return {}
    visible, params = viewer.statement_sql("s", connection.vendor)
    rows = {}
    for (statement_id, jti, kind, member_id, slug, member_kind, share_group_id, content_type, raw, verdict,
         incident_id) in read_by_ids(
        "SELECT CAST(s.id AS TEXT), s.jti, s.kind, s.member_id, m.slug, m.kind, s.share_group_id, s.content_type, "
        "s.raw, s.verdict, s.incident_id FROM hashes_statement s JOIN members_member m ON m.id = s.member_id "
        f"WHERE {visible} AND s.id IN ({{ids}})",
        statement_params(keys), *params, prepare="statement_facts",
    ):
        rows[statement_key(statement_id)] = (jti, kind, member_id, slug, member_kind, share_group_id, content_type, raw,
                                             verdict, incident_id)
    # Labels apart, so that a statement's JWS (up to half a megabyte for a video) is read once.
    labels: dict[str, list[str]] = {}
    if rows:
        for statement_id, label in read_by_ids(
            "SELECT CAST(sl.statement_id AS TEXT), l.slug FROM hashes_statement_labels sl "
            "JOIN hashes_label l ON l.id = sl.label_id WHERE sl.statement_id IN ({ids})",
            statement_params(rows), prepare="statement_labels",
        ):
            labels.setdefault(statement_key(statement_id), []).append(label)
    return {
        key: StatementFacts(id=key, jti=jti, kind=kind, member_id=member_id, member_slug=slug,
                            member_kind=member_kind, share_group_id=share_group_id, content_type=content_type,
                            raw=raw, labels=tuple(sorted(labels.get(key, ()))), verdict=verdict,
                            incident_id=incident_id)
        for key, (jti, kind, member_id, slug, member_kind, share_group_id, content_type, raw, verdict, incident_id)
        in rows.items()
    }


def statement_params(keys: Iterable[str]) -> list[Any]:
    """Statement ids as query parameters, as UUIDField prepares them (a UUID where the database has
    the type, 32 hex digits elsewhere), without asking the connection once per statement."""
    native = connection.features.has_native_uuid_field
    return [uuid.UUID(key) if native else uuid.UUID(key).hex for key in keys]


def visible_facts(viewer: Viewer, ids: Iterable[str], facts: dict[str, StatementFacts]) -> list[StatementFacts]:
    """`facts` holds only visible statements (see statement_facts); the check here is the second lock."""
    return [
        facts[i] for i in ids
        if i in facts and viewer.sees(share_group_id=facts[i].share_group_id, member_id=facts[i].member_id)
    ]


def visible_links(viewer: Viewer, hash_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """For each hash, the links that placed it in its cluster, to hashes the viewer may see."""
    rows = read_by_ids(
        "SELECT hash_id, linked_to_id, distance, query_match_percent, stored_match_percent FROM hashes_hashlink "
        "WHERE hash_id IN ({ids}) ORDER BY id", set(hash_ids), prepare="hash_links")
    if not rows:
        return {}
    visible = set(visible_hashes(viewer).filter(pk__in={r[1] for r in rows}).values_list("pk", flat=True))
    links: dict[int, list[dict[str, Any]]] = {}
    for hash_id, linked_to, distance, query_percent, stored_percent in rows:
        if linked_to not in visible:
            continue
        link: dict[str, Any] = {"hash": linked_to}
        if distance is not None:
            link["distance"] = distance
        else:
            link.update(query_match_percent=query_percent, stored_match_percent=stored_percent)
        links.setdefault(hash_id, []).append(link)
    return links


def corroborating_members(statements: Iterable[StatementFacts]) -> int:
    """A hash's corroboration counts members, not statements: twenty statements of one member are one."""
    return len({fact.member_id for fact in statements})


def embedded(live: list[StatementFacts]) -> list[StatementFacts]:
    """The statements a hash view carries: each member's first live one, at most HASH_MAX_STATEMENTS
    members and about HASH_MAX_STATEMENT_BYTES (always at least one), so that no hash, however often
    it is corroborated, makes an event, a match or a webhook body large. The rest are counted in
    `statements_omitted` and listed by `GET hashes/{id}/statements/`."""
    chosen: list[StatementFacts] = []
    members: set[int] = set()
    size = 0
    for fact in live:
        if fact.member_id in members:
            continue
        if chosen and (len(chosen) >= settings.HASH_MAX_STATEMENTS
                       or size + len(fact.raw) > settings.HASH_MAX_STATEMENT_BYTES):
            break
        chosen.append(fact)
        members.add(fact.member_id)
        size += len(fact.raw)
    return chosen


def feedback_counts(votes: list[StatementFacts]) -> dict[str, int]:
    """Distinct members per verdict among the live feedback the reader may see."""
    if not votes:  # most hashes: counted for each of the 1,000 a match may return
        return {"agree": 0, "disagree": 0, "seen": 0}
    members: dict[str, set[int]] = {"agree": set(), "disagree": set(), "seen": set()}
    for fact in votes:
        members.setdefault(fact.verdict, set()).add(fact.member_id)
    return {verdict: len(ids) for verdict, ids in members.items()}


def sees_snapshot(viewer: Viewer, snapshot: dict[str, Any], facts: dict[str, StatementFacts]) -> bool:
    """A dispute (Dispute.snapshot) is seen by whoever sees the statement that opened it; one the
    suppression list opened, by everyone who sees the hash."""
    opener = snapshot.get("opened_by")
    return opener is None or bool(visible_facts(viewer, [opener], facts))


def dispute_view(viewer: Viewer, snapshots: list[dict[str, Any]], facts: dict[str, StatementFacts]) -> dict[str, Any] | None:
    """The dispute a reader sees on a hash: among those it may see (it may see the statement that
    opened it, or the suppression list opened it), the earliest open one, else the latest."""
    visible = [d for d in snapshots if sees_snapshot(viewer, d, facts)]
    if not visible:
        return None
    open_ = [d for d in visible if d["state"] == "open"]
    chosen = open_[0] if open_ else visible[-1]
    return {key: chosen[key] for key in ("id", "state", "opened_at", "resolved_at", "reasons", "resolution")}


def asserted_by(live: list[StatementFacts], seen: list[StatementFacts]) -> dict[str, Any]:
    """What a hash's visible statements say of it (`live` those that assert it now, `seen` every one
    that ever did): the part of its view that depends on nothing else, so that hashes asserted by
    the same statements share it (a match of a 1,000-hash family builds it once per statement set).
    Read-only: its lists may be shared by several views."""
    submitters: dict[str, str] = {}
    for fact in live:
        submitters.setdefault(fact.member_slug, fact.member_kind)
    carried = embedded(live)
    return {
        "content_type": (live or seen)[0].content_type if (live or seen) else "",
        "labels": sorted({label for fact in live for label in fact.labels}),
        "submitters": [{"member": slug, "kind": kind} for slug, kind in submitters.items()],
        "corroboration_count": corroborating_members(live),
        "statements": [fact.raw for fact in carried],
        "statements_omitted": len(live) - len(carried),
    }


def hash_view(
    hash_: Hash, live: list[StatementFacts], *, cluster_id: int, state: str, seen: list[StatementFacts],
    links: list[dict[str, Any]] | None = None, votes: list[StatementFacts] = (),
    dispute: dict[str, Any] | None = None, labels_override: list[str] | None = None,
    asserted: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A hash as one member sees it: only what its visible statements say. `live` are the visible
    statements that assert it now; `seen` every visible statement that ever did (for a retracted
    hash, what it was); `votes` the visible live feedback, `dispute` the dispute it may see;
    `asserted` is asserted_by(live, seen), if the caller has it already.
    Nothing comes from the hash row that a hidden statement could have set (`labels_override` is
    an administrator's decision, the same for everyone)."""
    said = asserted_by(live, seen) if asserted is None else asserted
    body: dict[str, Any] = {"id": hash_.pk, "signal_type": hash_.signal_type}
    # A vPDQ's value is the digest of its frames' hashes: what feedback targets and exchanges key it by.
    body["value"] = hash_.value
    if hash_.signal_type == "vpdq":
        body["frames"] = hash_.frames
    body.update({
        "content_type": said["content_type"],
        "cluster": cluster_id,
        "links": links or [],
        "state": state,
        "labels": said["labels"] if labels_override is None else list(labels_override),
        "submitters": said["submitters"],
        "corroboration_count": said["corroboration_count"],
        "statements": said["statements"],
        "statements_omitted": said["statements_omitted"],
        "feedback": feedback_counts(list(votes)),
        "dispute": dispute,
    })
    return body


@dataclass(frozen=True)
class EventView:
    """An event as one viewer sees it: its body, and the visible statements the body was built from
    (what a subscription's filters look at)."""

    body: dict[str, Any]
    before: list[StatementFacts]
    after: list[StatementFacts]


def event_view(
    event: Event, viewer: Viewer, facts: dict[str, StatementFacts],
    links: dict[int, list[dict[str, Any]]] | None = None,
) -> EventView | None:
    """The event as this viewer sees it, or None if nothing it may see changed: the one builder of a
    feed event, for the feed, TAXII and webhooks alike.

    The type is the viewer's: a hash that becomes visible to it is `hash.added` for it, one whose
    last visible statement goes is `hash.retracted`, whatever happened in parts it cannot see."""
    before = visible_facts(viewer, event.statements_before, facts)
    after = visible_facts(viewer, event.statements_after, facts)
    if not before and not after:
        return None
    cause = facts.get(str(event.cause_id)) if event.cause_id else None
    if cause is not None and not viewer.sees(share_group_id=cause.share_group_id, member_id=cause.member_id):
        cause = None
    dispute = dispute_view(viewer, event.disputes or [], facts)
    if not changed_for(viewer, event, facts, before, after, cause, dispute):
        return None
    kind = Event.Type.of_change(before, after)
    body = {
        "seq": event.seq,
        "id": str(event.event_id),
        "type": kind,
        "occurred_at": event.occurred_at.isoformat(),
        "hash": hash_view(event.hash, after, cluster_id=event.cluster_id_at, seen=before,
                          links=(links or {}).get(event.hash_id), state=Hash.State.RETRACTED if not after else Hash.State.ACTIVE,
                          votes=visible_facts(viewer, event.feedback or [], facts), dispute=dispute,
                          labels_override=event.labels_override),
    }
    if event.cluster_before is not None:
        body["hash"]["previous_cluster"] = event.cluster_before
    if cause is not None:
        body["cause"] = cause_view(cause, embedded(after))
    return EventView(body, before, after)


def render_event(
    event: Event, viewer: Viewer, facts: dict[str, StatementFacts],
    links: dict[int, list[dict[str, Any]]] | None = None,
) -> dict[str, Any] | None:
    """`event_view`'s body."""
    view = event_view(event, viewer, facts, links)
    return None if view is None else view.body


def changed_for(viewer: Viewer, event: Event, facts: dict[str, StatementFacts], before: list[StatementFacts], after: list[StatementFacts],
                cause: StatementFacts | None, dispute: dict[str, Any] | None) -> bool:
    """Whether the reader sees anything change: its visible statements, the cluster, a verdict it may
    see (the cause is visible), a dispute it may see (`dispute` is the one it sees), or the labels
    an administrator's outcome replaced (everyone's, whoever may see the dispute behind it)."""
    if [f.id for f in before] != [f.id for f in after] or event.cluster_before is not None:
        return True
    if not after:
        return False
    if event.change == "feedback":
        return cause is not None
    if event.change == "dispute":
        if dispute is not None and any(d["id"] == event.dispute_id and sees_snapshot(viewer, d, facts)
                                       for d in event.disputes or ()):
            return True
        return shown_labels(after, event.labels_override_before) != shown_labels(after, event.labels_override)
    return False


def shown_labels(live: list[StatementFacts], labels_override: list[str] | None) -> list[str]:
    """The labels a hash view shows: an administrator's, if set, else what its visible statements say."""
    if labels_override is not None:
        return list(labels_override)
    return sorted({label for fact in live for label in fact.labels})


def cause_view(cause: StatementFacts, statements: list[StatementFacts]) -> dict[str, Any]:
    """The statement that caused an event. `statements` are those the event's hash shows: when the
    cause is one of them (an assertion or a corroboration) its JWS is not sent twice, and a receiver
    finds it among them by the `iss` and `jti` of its signed payload (a jti is unique per member
    only). Any other cause (a retraction, or a statement on another hash that merged this hash's
    family) comes with its JWS."""
    view = {"member": cause.member_slug, "kind": cause.kind, "jti": cause.jti}
    if all(fact.id != cause.id for fact in statements):
        view["statement"] = cause.raw
    return view


@dataclass(frozen=True, slots=True)
class EventHash:
    """What a feed event shows of its hash's row (see hash_view)."""

    pk: int
    signal_type: str
    value: str
    frames: list[dict[str, Any]] | None


@dataclass(frozen=True, slots=True)
class EventRow:
    """An Event as the feed reads it (plain SQL, no model instance): the fields event_view uses."""

    seq: int
    event_id: str
    occurred_at: Any  # an aware datetime
    hash_id: int
    hash: EventHash
    cause_id: str | None
    statements_before: list[str]
    statements_after: list[str]
    cluster_id_at: int
    cluster_before: int | None
    change: str
    dispute_id: int | None
    feedback: list[str] | None
    disputes: list[dict[str, Any]] | None
    labels_override: list[str] | None
    labels_override_before: list[str] | None

    refs = Event.refs


EVENT_COLUMNS = (
    "SELECT e.seq, CAST(e.event_id AS TEXT), e.occurred_at, e.hash_id, CAST(e.cause_id AS TEXT), "
    "e.statements_before, e.statements_after, e.cluster_id_at, e.cluster_before, e.change, e.dispute_id, "
    "e.feedback, e.disputes, e.labels_override, e.labels_override_before, h.signal_type, h.value, h.frames "
    "FROM hashes_event e JOIN hashes_hash h ON h.id = e.hash_id ")


def feed_events(after: int, limit: int) -> list[EventRow]:
    """The first `limit` events after seq `after`, in seq order, with their hashes: one prepared read."""
    return event_rows(read_prepared(
        "feed_events", EVENT_COLUMNS + "WHERE e.seq > %s ORDER BY e.seq LIMIT %s", [after, limit]))


def events_at(seqs: Iterable[int]) -> list[EventRow]:
    """The events with these seqs, with their hashes, in seq order: one prepared read (webhooks)."""
    return event_rows(read_by_ids(EVENT_COLUMNS + "WHERE e.seq IN ({ids}) ORDER BY e.seq", seqs,
                                  prepare="events_at"))


def event_rows(rows: Iterable[tuple]) -> list[EventRow]:
    """EventRows of rows read with EVENT_COLUMNS."""
    occurred = converter(Event, "occurred_at")
    return [
        EventRow(seq, statement_key(event_id), occurred(occurred_at), hash_id,
                 EventHash(hash_id, signal_type, value, json_column(frames)),
                 statement_key(cause_id) if cause_id is not None else None, json_column(before), json_column(after),
                 cluster_id_at, cluster_before, change, dispute_id, json_column(feedback), json_column(disputes),
                 json_column(labels_override), json_column(labels_override_before))
        for (seq, event_id, occurred_at, hash_id, cause_id, before, after, cluster_id_at, cluster_before, change,
             dispute_id, feedback, disputes, labels_override, labels_override_before, signal_type, value, frames) in rows
    ]


def feed_page(*, viewer: Viewer, after: int, limit: int, max_bytes: int | None = None) -> dict[str, Any]:
    """Events after `after` that the viewer may see, in seq order, at most `limit` of them and (past
    the first) about `max_bytes` of signed statements, so a page of large vPDQ statements stays sane.

    `next_after` is the last seq scanned, not the last returned, so a reader that keeps asking after
    `next_after` skips invisible events without ever skipping a visible one.

    Every reader polls it, so it is read with plain SQL (feed_events, statement_facts), and each
    chunk is read one event longer than a page: whether more events follow is then known from the
    chunk unless the chunk was scanned to its end."""
    max_bytes = settings.FEED_MAX_BYTES if max_bytes is None else max_bytes
    events: list[dict[str, Any]] = []
    cursor, scanned, budget, size = after, 0, limit * FEED_SCAN_FACTOR, 0
    full = False
    more: bool | None = None  # whether events follow `cursor`, as the last read tells (None: it does not)
    while not full and scanned < budget:
        chunk = feed_events(cursor, limit + 1)
        if not chunk:
            more = False
            break
        facts = statement_facts({i for e in chunk for i in e.refs()}, viewer)
        links = visible_links(viewer, {e.hash_id for e in chunk})
        for event in chunk:
            rendered = render_event(event, viewer, facts, links)
            if rendered is not None:
                weight = sum(len(s) for s in rendered["hash"]["statements"])
                if events and size + weight > max_bytes:
                    full = True  # this event opens the next page
                    break
                events.append(rendered)
                size += weight
            cursor, scanned = event.seq, scanned + 1
            if len(events) == limit or scanned == budget:
                full = len(events) == limit
                break
        if cursor != chunk[-1].seq:
            more = True  # an event read follows the cursor
        elif len(chunk) <= limit:
            more = False  # the chunk reached the end of the feed as it was read
            break
        else:
            more = None
    has_more = more if more is not None else bool(
        read_prepared("feed_more", "SELECT EXISTS (SELECT 1 FROM hashes_event WHERE seq > %s)", [cursor])[0][0])
    return {"events": events, "next_after": cursor, "has_more": has_more}


# How many corroborations `GET hashes/{id}/` lists: the newest, the older ones counted.
HASH_DETAIL_MAX_CORROBORATIONS = 100


def hash_views(viewer: Viewer, hashes: list[Hash], *, detailed: bool = False) -> dict[int, dict[str, Any]]:
    """Hashes as this viewer sees them (each must be visible to it). `detailed` adds the newest
    HASH_DETAIL_MAX_CORROBORATIONS visible corroborations, live or ended (retracted, or superseded
    by the member's later statement: `superseded_by`), `corroborations_omitted` counting the older
    ones, and the times of the first and last visible change. What is read is bounded: the live
    corroborations (one per member and audience) and, per hash, the listed ones and the first."""
    fields = ("hash_id", "statement_id", "retracted_at", "distance", "created_at", "superseded_by_id")
    live_rows: dict[int, list[tuple]] = {h.pk: [] for h in hashes}
    for hash_id, *row in Corroboration.objects.filter(hash__in=hashes, retracted_at__isnull=True).order_by(
            "id").values_list(*fields):
        live_rows[hash_id].append(row)
    listed: dict[int, list[tuple]] = {h.pk: [] for h in hashes}
    first: dict[int, list[tuple]] = {h.pk: [] for h in hashes}
    totals: dict[int, dict[str, Any]] = {}
    for hash_ in hashes:
        visible = Corroboration.objects.filter(viewer.statement_q("statement__"), hash=hash_)
        first[hash_.pk] = [row for _, *row in visible.order_by("id").values_list(*fields)[:1]]
        if detailed:
            newest = visible.order_by("-id").values_list(*fields)[:HASH_DETAIL_MAX_CORROBORATIONS]
            listed[hash_.pk] = [row for _, *row in reversed(list(newest))]
            totals[hash_.pk] = visible.aggregate(count=Count("id"), created=Min("created_at"),
                                                 changed=Max("created_at"), ended=Max("retracted_at"))
    governance = load_governance(live_rows)
    snapshots = {pk: state.snapshots() for pk, state in governance.items()}
    facts = statement_facts(
        {str(r[0]) for rows in (live_rows, listed, first) for group in rows.values() for r in group}
        | {sid for state in governance.values() for sid in state.votes()}
        | {d["opened_by"] for ds in snapshots.values() for d in ds if d["opened_by"]}, viewer)
    links = visible_links(viewer, live_rows)
    views = {}
    for hash_ in hashes:
        live = visible_facts(viewer, [str(r[0]) for r in live_rows[hash_.pk]], facts)
        seen = visible_facts(viewer, [str(r[0]) for r in first[hash_.pk]], facts) + live
        body = hash_view(hash_, live, cluster_id=hash_.cluster_id, seen=seen, links=links.get(hash_.pk),
                         state=Hash.State.ACTIVE if live else Hash.State.RETRACTED,
                         votes=visible_facts(viewer, governance[hash_.pk].votes(), facts),
                         dispute=dispute_view(viewer, snapshots[hash_.pk], facts),
                         labels_override=hash_.labels_override)
        mine = [r for r in listed[hash_.pk] if str(r[0]) in facts]  # only what the viewer may see
        if detailed and mine:
            total = totals[hash_.pk]
            body["created_at"] = total["created"].isoformat()
            body["updated_at"] = max(t for t in (total["changed"], total["ended"]) if t is not None).isoformat()
            body["corroborations"] = [
                {"statement_id": str(sid), "member": facts[str(sid)].member_slug, "distance": distance,
                 "created_at": created.isoformat(), "retracted_at": retracted.isoformat() if retracted else None,
                 "superseded_by": str(by) if by else None}
                for sid, retracted, distance, created, by in mine
            ]
            body["corroborations_omitted"] = total["count"] - len(mine)
        views[hash_.pk] = body
    return views


def hash_detail(*, viewer: Viewer, hash_id: int) -> dict[str, Any]:
    hash_ = visible_hashes(viewer).filter(pk=hash_id).first()
    if hash_ is None:
        raise NotFound("No hash with this id is visible to you.")
    return hash_views(viewer, [hash_], detailed=True)[hash_.pk]


def hash_statements(*, viewer: Viewer, hash_id: int, offset: int, limit: int) -> dict[str, Any]:
    """The live statements of a visible hash, as the viewer may see them, in the order they came;
    a page stops early past HASH_MAX_STATEMENT_BYTES (it always holds one)."""
    if not visible_hashes(viewer, live_only=True).filter(pk=hash_id).exists():
        raise NotFound("No hash with this id is visible to you.")
    live = Corroboration.objects.filter(viewer.statement_q("statement__"), hash_id=hash_id, retracted_at__isnull=True)
    ids = [str(i) for i in live.order_by("id").values_list("statement_id", flat=True)[offset:offset + limit]]
    facts = statement_facts(ids, viewer)
    page, size = [], 0
    for fact in visible_facts(viewer, ids, facts):
        if page and size + len(fact.raw) > settings.HASH_MAX_STATEMENT_BYTES:
            break
        page.append({"id": fact.id, "member": fact.member_slug, "kind": fact.member_kind, "statement": fact.raw})
        size += len(fact.raw)
    end = offset + len(page)
    return {"statements": page, "next_offset": end if end < live.count() else None}


def match_signals(*, viewer: Viewer, queries: list[MatchQuery], max_bytes: int | None = None,
                  exclude_disputed: bool = False) -> dict[str, Any]:
    """For each query, the visible, active hashes that match it, nearest first, at most
    MATCH_MAX_RESULTS of them, in query order.

    Exact: the indexes return every stored hash within the radius (see hashes.signals.index), and
    visibility is applied afterwards, to the full candidate set, so only visible hashes are ranked
    and cut (`ranked_hits`): a hidden candidate never takes a visible one's place. Identical queries
    are searched once. The answer stops taking matches once they pass about `max_bytes` (it always
    carries one): the results from there on are `truncated`, and so is the answer as a whole.

    Only the hashes that survive the cut are rendered, and each only when the answer reaches it
    (MatchViews): a query inside a large variant family, or many queries past the byte bound, no
    longer build views nobody receives. Each view is encoded once, and the answer carries the
    encoded bytes (orjson.Fragment) so that the renderer does not encode it again."""
    max_bytes = settings.MATCH_MAX_RESPONSE_BYTES if max_bytes is None else max_bytes
    unique: list[MatchQuery] = []
    at: list[int] = []  # where each distinct query first appears
    first: dict[tuple, int] = {}
    slot = []  # the distinct query answering each position
    for position, query in enumerate(queries):
        key = query_key(query)
        if key not in first:
            first[key] = len(unique)
            unique.append(query)
            at.append(position)
        slot.append(first[key])
    frames = {n: bounded_frames(q, at[n]) for n, q in enumerate(unique) if q.signal.type == "vpdq"}
    found, matched = search_matches(viewer, unique, frames)
    held: set[int] = set()
    if exclude_disputed:  # held while contested: a dispute the member can see is open on it
        contested = {h for hits in found for h in hits if matched.rows[h].governed}
        if contested:
            disputed = MatchViews(matched, viewer, contested)
            held = {h for h in contested if (disputed.view(h)["dispute"] or {}).get("state") == "open"}
    limit = settings.MATCH_MAX_RESULTS
    ranked = [ranked_hits(hits, held, limit) for hits in found]
    views = MatchViews(matched, viewer, {h for chosen, _ in ranked for h in chosen})
    results, size, full = [], 0, False
    for query, n in zip(queries, slot):
        hits, (chosen, total) = found[n], ranked[n]
        matches = []
        for h in chosen if not full else ():
            encoded = views.encoded(h)
            weight = len(encoded) + 64  # the match's own fields
            if full or (size and size + weight > max_bytes):
                full = True
                break
            matches.append({"hash": orjson.Fragment(encoded), **hits[h]})
            size += weight
        results.append({"query": query.echo(), "matches": matches, "truncated": len(matches) < total})
    return {"results": results, "truncated": full}


def ranked_hits(hits: dict[int, dict[str, Any]], held: set[int], limit: int) -> tuple[list[int], int]:
    """The ids of a query's visible `hits` (less those `held`) in the order a match answers them,
    at most `limit` of them, and how many there were. The order is total: distance (PDQ, MD5,
    SHA-256; 0 for vPDQ), then the lower of a video's two match percentages, highest first, then
    the hash id; so which hashes survive the cut is the same whatever else the index holds."""
    keys = [
        (hit["distance"], -100, h) if "distance" in hit
        else (0, -min(hit.get("query_match_percent", 100), hit.get("stored_match_percent", 100)), h)
        for h, hit in hits.items() if h not in held
    ]
    chosen = heapq.nsmallest(limit, keys) if len(keys) > limit else sorted(keys)
    return [key[2] for key in chosen], len(keys)


def query_key(query: MatchQuery) -> tuple:
    """What decides a query's answer: equal keys, equal answers (a video by its frames' hashes and
    qualities, not their indexes or timestamps)."""
    frames = tuple((f["pdq"], f["q"]) for f in query.signal.frames or ())
    return (query.signal.type, query.signal.value, frames, query.max_distance, query.min_match_percent)


def bounded_frames(query: MatchQuery, position: int) -> np.ndarray:
    """A vPDQ query's usable frames as rows, refused past MATCH_MAX_VPDQ_FRAMES: each one is searched
    in the frame index and then compared with every frame of every candidate video."""
    rows = usable_rows(query.signal.frames or (), quality=settings.VPDQ_FRAME_QUALITY)
    limit = settings.MATCH_MAX_VPDQ_FRAMES
    if len(rows) > limit:
        raise DomainError(
            "vpdq_query_too_long",
            f"signals[{position}] has {len(rows)} distinct frames of quality {settings.VPDQ_FRAME_QUALITY} or more; "
            f"a vPDQ query may carry at most {limit}. Hash fewer frames a second.",
            {"at": f"signals[{position}]", "max_frames": limit, "frames": len(rows)},
        )
    return rows


def search_matches(
    viewer: Viewer, queries: list[MatchQuery], videos: dict[int, np.ndarray]
) -> tuple[list[dict[int, dict[str, Any]]], MatchedHashes]:
    """For each query, {hash id: match fields} of the visible, active hashes that match it, and what
    was read of those hashes to render them; `videos` holds the usable frames of each vPDQ query, by
    position."""
    index = indexes.fresh()
    found: list[dict[int, dict[str, Any]]] = [{} for _ in queries]
    by_radius: dict[int, list[int]] = {}
    for n, query in enumerate(queries):
        if query.signal.type == "pdq":
            radius = settings.MATCH_DISTANCE if query.max_distance is None else query.max_distance
            by_radius.setdefault(radius, []).append(n)
    for radius, positions in by_radius.items():
        near = index.pdq_within_many([queries[n].signal.value for n in positions], radius)
        for n, hits in zip(positions, near):
            found[n] = {hash_id: {"distance": distance} for hash_id, distance in hits.items()}
    exact = [(n, q.signal) for n, q in enumerate(queries) if q.signal.type in ("md5", "sha256")]
    if exact:
        wanted = Q()
        for signal_type in {signal.type for _, signal in exact}:
            wanted |= of_values(signal_type, {signal.value for _, signal in exact if signal.type == signal_type})
        stored: dict[tuple[str, str], list[int]] = {}  # one hash per audience that holds the value
        for pk, t, v in Hash.objects.filter(wanted).values_list("pk", "signal_type", "value"):
            stored.setdefault((t, v), []).append(pk)
        for n, signal in exact:
            found[n] = {pk: {"distance": 0} for pk in stored.get((signal.type, signal.value), ())}
    sharing = {n: index.videos_sharing_rows(rows) for n, rows in videos.items()}
    candidates = {h for hits in found for h in hits} | {h for ids in sharing.values() for h in ids}
    matched = MatchedHashes.read(viewer, candidates)
    visible = set(matched.rows)
    for n, rows in videos.items():
        threshold = queries[n].min_match_percent or settings.VPDQ_CLUSTER_PERCENT
        for hash_id in sharing[n] & visible:
            stored_rows = usable_rows(matched.rows[hash_id].frames, quality=settings.VPDQ_FRAME_QUALITY)
            query_percent, stored_percent = compare_rows(rows, stored_rows, distance=settings.VPDQ_FRAME_DISTANCE)
            if max(query_percent, stored_percent) >= threshold:
                found[n][hash_id] = {"query_match_percent": query_percent, "stored_match_percent": stored_percent}
    return [{h: hit for h, hit in hits.items() if h in visible} for hits in found], matched


@dataclass(slots=True)
class HashRow:
    """What a match answer shows of a hash, and whether it has feedback or disputes, or links, to read."""

    pk: int
    signal_type: str
    value: str
    cluster_id: int
    labels_override: list[str] | None
    governed: bool
    linked: bool
    frames: list[dict[str, Any]] | None = None  # vPDQ only


def json_column(value: Any) -> Any:
    """A JSON column as a cursor returns it: text on SQLite and (as Django sets psycopg up) on PostgreSQL.
    orjson, several times faster, reads what json reads; what it refuses (NaN) goes to json."""
    if not isinstance(value, (str, bytes)):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return json.loads(value)


def statement_key(value: Any) -> str:
    """A statement id read as text (36 characters on PostgreSQL, 32 hex digits on SQLite) as
    str(uuid) spells it."""
    return value if len(value) == 36 else str(uuid.UUID(value))


# A match's one read: the live corroborations of the candidates that the viewer may see, with their
# hashes' rows (kind 0), then every statement among them, with its labels (kind 1, a row per label).
# The viewer's rule (Viewer.statement_sql) is the condition of `c`, so nothing of a statement it may
# not see is read; a statement's JWS is read once however many hashes it asserts (a 1,000-hash
# family carries one). Rows come in no particular order (sorting them cost PostgreSQL more than
# sorting a hash's few corroborations costs Python). The ids come last: read_by_ids appends them.
MATCH_READ = (
    "WITH c AS (SELECT c.id, c.hash_id, c.statement_id, s.share_group_id, s.member_id "
    "FROM hashes_corroboration c JOIN hashes_statement s ON s.id = c.statement_id "
    "WHERE {visible} "
    "AND c.retracted_at IS NULL AND c.hash_id IN ({{ids}})) "
    "SELECT 0, c.id, c.hash_id, CAST(c.statement_id AS TEXT), c.share_group_id, c.member_id, h.signal_type, "
    "h.value, h.cluster_id, h.labels_override, "
    "EXISTS (SELECT 1 FROM hashes_feedback f WHERE f.hash_id = h.id AND f.ended_at IS NULL) "
    "OR EXISTS (SELECT 1 FROM hashes_dispute d WHERE d.hash_id = h.id), "
    "EXISTS (SELECT 1 FROM hashes_hashlink l WHERE l.hash_id = h.id), "
    "EXISTS (SELECT 1 FROM suppression_benignentry b WHERE b.active), "
    "NULL, NULL, NULL, NULL, NULL, NULL "
    "FROM c JOIN hashes_hash h ON h.id = c.hash_id "
    "UNION ALL "
    "SELECT 1, 0, NULL, CAST(s.id AS TEXT), s.share_group_id, s.member_id, s.jti, s.kind, NULL, NULL, NULL, NULL, "
    "NULL, m.slug, m.kind, s.content_type, s.raw, s.verdict, l.slug "
    "FROM hashes_statement s JOIN members_member m ON m.id = s.member_id "
    "LEFT JOIN hashes_statement_labels sl ON sl.statement_id = s.id "
    "LEFT JOIN hashes_label l ON l.id = sl.label_id "
    "WHERE s.id IN (SELECT c.statement_id FROM c)"
)


@dataclass
class MatchedHashes:
    """The candidates of one match request that the viewer may see, in as few round trips as it
    takes: matching is the hot path (a request per second per live stream, of up to 1,000 frames),
    so the hashes and the statements they hold are one plain SQL read (MATCH_READ) whatever their
    number, and feedback, disputes and links are read only for the hashes that have some.
    Visibility is decided by the one rule on every live statement of every candidate: in the read,
    by Viewer.statement_sql, before anything else of a statement is read; and again by Viewer.sees
    on each corroboration, before a hash is kept.

    `rows` holds the visible, live hashes that no suppression list entry covers; `live` their live
    statements the viewer may see, in the order they came; `facts` those statements (and perhaps
    more the viewer may see: those of candidates left out afterwards)."""

    rows: dict[int, HashRow]
    live: dict[int, list[str]]
    facts: dict[str, StatementFacts] = field(default_factory=dict)

    @classmethod
    def read(cls, viewer: Viewer, candidates: set[int]) -> MatchedHashes:
        if not candidates:
            return cls({}, {})
        rows: dict[int, HashRow] = {}
        assertions: dict[int, list[tuple[int, str]]] = {}  # (corroboration id, statement id)
        said: dict[str, list] = {}
        suppression = False
        visible, params = viewer.statement_sql("s", connection.vendor)
        sees = viewer.sees
        for (part, corroboration, hash_id, statement_id, share_group_id, member_id, signal_type, value, cluster_id,
             labels_override, governed, linked, benign, slug, member_kind, content_type, raw, verdict, label) in read_by_ids(
            MATCH_READ.format(visible=visible), candidates, *params, prepare="match_read",
        ):
            if part:  # a statement: signal_type and value hold its jti and kind
                key = statement_key(statement_id)
                if key not in said:
                    said[key] = [signal_type, value, member_id, slug, member_kind, share_group_id, content_type, raw,
                                 verdict, set()]
                if label is not None:
                    said[key][-1].add(label)
                continue
            if not sees(share_group_id=share_group_id, member_id=member_id):  # the read's condition, checked again
                continue
            pairs = assertions.get(hash_id)
            if pairs is None:
                assertions[hash_id] = [(corroboration, statement_key(statement_id))]
                rows[hash_id] = HashRow(hash_id, signal_type, value, cluster_id, json_column(labels_override),
                                        bool(governed), bool(linked))
            else:
                pairs.append((corroboration, statement_key(statement_id)))
            suppression = suppression or bool(benign)
        # Each hash's statements in the order they came (their corroborations' order).
        live = {pk: [pairs[0][1]] if len(pairs) == 1 else [key for _, key in sorted(pairs)]
                for pk, pairs in assertions.items()}
        if suppression:  # the suppression list: never returned, to anyone
            for pk in suppressed_hash_ids(rows):
                del rows[pk], live[pk]
        videos = [pk for pk, row in rows.items() if row.signal_type == SignalType.VPDQ]
        for pk, frames in read_by_ids("SELECT id, frames FROM hashes_hash WHERE id IN ({ids})", videos):
            rows[pk].frames = json_column(frames)
        facts = {
            key: StatementFacts(id=key, jti=jti, kind=kind, member_id=member_id, member_slug=slug,
                                member_kind=member_kind, share_group_id=share_group_id, content_type=content_type,
                                raw=raw, labels=tuple(sorted(labels)), verdict=verdict)
            for key, (jti, kind, member_id, slug, member_kind, share_group_id, content_type, raw, verdict, labels)
            in said.items()
        }
        return cls(rows, live, facts)

    def views(self, viewer: Viewer, hash_ids: set[int]) -> tuple[dict[int, dict[str, Any]], dict[int, int]]:
        """These hashes (among `rows`) as the viewer sees them: what hash_views says of them; and
        the length of each view encoded as JSON (what a match answer's byte bound counts)."""
        views = MatchViews(self, viewer, hash_ids)
        return {pk: views.view(pk) for pk in hash_ids}, {pk: len(views.encoded(pk)) for pk in hash_ids}


class MatchViews:
    """Views of some of a match's hashes (`hash_ids`, among `matched.rows`), each built and encoded
    when first asked for. What they need beyond the match's read is read here once for them all, and
    only for the hashes that have some: feedback and disputes, links, and the statements those name.
    Hashes asserted by the same statements (variants submitted together) share what those say
    (asserted_by), built once; and those of them with nothing of their own beyond their id, value
    and cluster (no feedback or dispute, no links, no administrator's labels, not a video: most of a
    variant family) share one encoded view, cut where those three stand (`_template`)."""

    def __init__(self, matched: MatchedHashes, viewer: Viewer, hash_ids: Iterable[int]) -> None:
        self.matched, self.viewer = matched, viewer
        rows = matched.rows
        governed = [pk for pk in hash_ids if rows[pk].governed]
        self.governance = load_governance(governed) if governed else {}
        self.snapshots = {pk: state.snapshots() for pk, state in self.governance.items()}
        facts = matched.facts
        extra = ({sid for state in self.governance.values() for sid in state.votes()}
                 | {d["opened_by"] for ds in self.snapshots.values() for d in ds if d["opened_by"]}) - set(facts)
        if extra:
            facts = {**facts, **statement_facts(extra, viewer)}
        self.facts = facts
        linked = [pk for pk in hash_ids if rows[pk].linked]
        self.links = visible_links(viewer, linked) if linked else {}
        self._shared: dict[tuple[str, ...], tuple[list[StatementFacts], dict[str, Any]]] = {}
        self._views: dict[int, dict[str, Any]] = {}
        self._encoded: dict[int, bytes] = {}
        # By statements and signal type: the first hash seen (its id), then the template (False: none can be made).
        self._templates: dict[tuple[tuple[str, ...], str], int | tuple[bytes, ...] | bool] = {}

    def view(self, pk: int) -> dict[str, Any]:
        view = self._views.get(pk)
        if view is None:
            viewer, facts = self.viewer, self.facts
            row = self.matched.rows[pk]
            key = tuple(self.matched.live[pk])
            shared = self._shared.get(key)
            if shared is None:
                live = visible_facts(viewer, key, facts)
                shared = self._shared[key] = (live, asserted_by(live, live))
            live, asserted = shared
            governance = self.governance.get(pk)
            view = self._views[pk] = hash_view(
                row, live, cluster_id=row.cluster_id, seen=live, links=self.links.get(pk), state=Hash.State.ACTIVE,
                votes=visible_facts(viewer, governance.votes(), facts) if governance is not None else (),
                dispute=dispute_view(viewer, self.snapshots[pk], facts) if governance is not None else None,
                labels_override=row.labels_override, asserted=asserted)
        return view

    def encoded(self, pk: int) -> bytes:
        """The view as the answer carries it: its JSON, exactly orjson.dumps(self.view(pk)), encoded once."""
        encoded = self._encoded.get(pk)
        if encoded is None:
            row = self.matched.rows[pk]
            if (row.labels_override is None and row.frames is None and pk not in self.governance
                    and not self.links.get(pk)):
                key = (tuple(self.matched.live[pk]), row.signal_type)
                parts = self._templates.get(key)
                if parts is None:  # the first such hash is encoded whole; the second makes the template from it
                    self._templates[key] = pk
                elif parts is not False and not isinstance(parts, tuple):  # the first one's id
                    parts = self._templates[key] = self._template(parts) or False
                if isinstance(parts, tuple):
                    encoded = b"".join((parts[0], str(pk).encode(), parts[1], orjson.dumps(row.value), parts[2],
                                        str(row.cluster_id).encode(), parts[3]))
            if encoded is None:
                encoded = orjson.dumps(self.view(pk))
            self._encoded[pk] = encoded
        return encoded

    def _template(self, pk: int) -> tuple[bytes, ...] | None:
        """Hash `pk`'s encoded view cut where its id, value and cluster stand: what every hash with
        the same statements and signal type and nothing else of its own encodes to, around those
        three. None if they cannot be told apart in it (the view is then encoded whole)."""
        marked = orjson.dumps({**self.view(pk), **OWN_FIELDS})  # the same keys, in the same order
        parts, rest = [], marked
        for name in ("id", "value", "cluster"):
            cut = orjson.dumps(OWN_FIELDS[name])
            if marked.count(cut) != 1:
                return None
            head, found, rest = rest.partition(cut)
            if not found:
                return None
            parts.append(head)
        return (*parts, rest)


# What stands for a hash's own id, value and cluster in a shared encoded view (MatchViews._template):
# strings no view holds otherwise (a NUL is never in a value, a label or a JWS).
OWN_FIELDS = {"id": "\x00match-view-id\x00", "value": "\x00match-view-value\x00",
              "cluster": "\x00match-view-cluster\x00"}


def dispute_list(*, viewer: Viewer, after: int, limit: int, state: str | None = None) -> dict[str, Any]:
    """Disputes the viewer may see (it sees the statement that opened it, or the suppression list
    opened it) on hashes it may see, oldest first, paged by id."""
    disputes = (
        Dispute.objects.filter(pk__gt=after, hash__in=visible_hashes(viewer))
        .filter(Q(opened_by__isnull=True) | viewer.statement_q("opened_by__"))
        .select_related("hash").order_by("pk")
    )
    if state:
        disputes = disputes.filter(state=state)
    page = list(disputes[:limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return {
        "disputes": [{
            "id": d.pk, "hash": d.hash_id, "target": {"type": d.hash.signal_type, "value": d.hash.value},
            "state": d.state, "opened_at": d.opened_at.isoformat(),
            "resolved_at": d.resolved_at.isoformat() if d.resolved_at else None, "reasons": d.reasons,
            "resolution": d.resolution, "labels": d.labels,
        } for d in page],
        "next_after": page[-1].pk if more else None,
    }


def superseded_rows(statement: Statement) -> list[Corroboration]:
    """Where a later statement of its member replaced this one (few: one a signal at most)."""
    return list(Corroboration.objects.filter(statement=statement, superseded_by__isnull=False).order_by("id"))


def with_superseded(statements: QuerySet[Statement]) -> QuerySet[Statement]:
    """The statements with their `superseded_rows`, read in one query for them all."""
    return statements.prefetch_related(Prefetch(
        "corroborations", queryset=Corroboration.objects.filter(superseded_by__isnull=False).order_by("id"),
        to_attr="superseded_rows"))


def statement_get(*, member: Member, statement_id: Any) -> Statement:
    """A member sees only its own submissions here; others' statements reach it through the feed."""
    statement = with_superseded(Statement.objects.filter(member=member, id=statement_id).prefetch_related(
        "labels")).first()
    if statement is None:
        raise NotFound("No statement of yours has this id.")
    return statement


def statement_list(*, member: Member, state: str | None = None) -> QuerySet[Statement]:
    statements = Statement.objects.filter(member=member).order_by("-received_at", "id")
    if state:
        statements = statements.filter(state=state)
    return statements
