"""Every read about statements, hashes and the feed, always scoped by the asking member's Viewer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from django.conf import settings
from django.db.models import QuerySet

from consortium.api.errors import NotFound
from members.models import Member

from .models import Corroboration, Event, Hash, HashLink, Statement
from .visibility import Viewer, visible_hashes

# How far one feed request scans for events the reader may see before it answers with what it has.
FEED_SCAN_FACTOR = 10


@dataclass(frozen=True)
class StatementFacts:
    """What the feed needs of one statement, loaded once per page."""

    id: str
    member_id: int
    member_slug: str
    member_kind: str
    share_group_id: int | None
    content_type: str
    raw: str
    labels: tuple[str, ...]


def statement_facts(ids: Iterable[str], viewer: Viewer) -> dict[str, StatementFacts]:
    """The statements among `ids` that the viewer may see (the others are not even read).

    Plain tuples, not model instances: a feed page reads thousands of statements."""
    visible = Statement.objects.filter(viewer.statement_q(), id__in=set(ids))
    labels: dict[str, list[str]] = {}
    for statement_id, slug in Statement.labels.through.objects.filter(statement__in=visible).values_list(
        "statement_id", "label__slug"
    ):
        labels.setdefault(str(statement_id), []).append(slug)
    rows = visible.values_list("id", "member_id", "member__slug", "member__kind", "share_group_id", "content_type", "raw")
    facts = {}
    for statement_id, member_id, slug, kind, share_group_id, content_type, raw in rows:
        key = str(statement_id)
        facts[key] = StatementFacts(
            id=key, member_id=member_id, member_slug=slug, member_kind=kind, share_group_id=share_group_id,
            content_type=content_type, raw=raw, labels=tuple(sorted(labels.get(key, ()))),
        )
    return facts


def visible_facts(viewer: Viewer, ids: Iterable[str], facts: dict[str, StatementFacts]) -> list[StatementFacts]:
    """`facts` holds only visible statements (see statement_facts); the check here is the second lock."""
    return [
        facts[i] for i in ids
        if i in facts and viewer.sees(share_group_id=facts[i].share_group_id, member_id=facts[i].member_id)
    ]


def visible_links(viewer: Viewer, hash_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """For each hash, the links that placed it in its cluster, to hashes the viewer may see."""
    rows = list(HashLink.objects.filter(hash_id__in=set(hash_ids)).order_by("id").values_list(
        "hash_id", "linked_to_id", "distance", "query_match_percent", "stored_match_percent"))
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


def hash_view(
    hash_: Hash, live: list[StatementFacts], *, cluster_id: int, state: str, seen: list[StatementFacts],
    links: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A hash as one member sees it: only what its visible statements say. `live` are the visible
    statements that assert it now; `seen` every visible statement that ever did (for a retracted
    hash, what it was). Nothing comes from the hash row that a hidden statement could have set."""
    submitters: dict[str, str] = {}
    for fact in live:
        submitters.setdefault(fact.member_slug, fact.member_kind)
    body: dict[str, Any] = {"id": hash_.pk, "signal_type": hash_.signal_type}
    if hash_.signal_type == "vpdq":
        body["frames"] = hash_.frames
    else:
        body["value"] = hash_.value
    body.update({
        "content_type": (live or seen)[0].content_type if (live or seen) else "",
        "cluster": cluster_id,
        "links": links or [],
        "state": state,
        "labels": sorted({label for fact in live for label in fact.labels}),
        "submitters": [{"member": slug, "kind": kind} for slug, kind in submitters.items()],
        "corroboration_count": len(live),
        "statements": [fact.raw for fact in live],
    })
    return body


def render_event(
    event: Event, viewer: Viewer, facts: dict[str, StatementFacts],
    links: dict[int, list[dict[str, Any]]] | None = None,
) -> dict[str, Any] | None:
    """The event as this viewer sees it, or None if nothing it may see changed.

    The type is the viewer's: a hash that becomes visible to it is `hash.added` for it, one whose
    last visible statement goes is `hash.retracted`, whatever happened in parts it cannot see."""
    before = visible_facts(viewer, event.statements_before, facts)
    after = visible_facts(viewer, event.statements_after, facts)
    if not before and not after:
        return None
    if [f.id for f in before] == [f.id for f in after] and event.cluster_before is None:
        return None
    if not before:
        kind = Event.Type.ADDED
    elif not after:
        kind = Event.Type.RETRACTED
    else:
        kind = Event.Type.UPDATED
    body = {
        "seq": event.seq,
        "id": str(event.event_id),
        "type": kind,
        "occurred_at": event.occurred_at.isoformat(),
        "hash": hash_view(event.hash, after, cluster_id=event.cluster_id_at, seen=before,
                          links=(links or {}).get(event.hash_id), state=Hash.State.RETRACTED if not after else Hash.State.ACTIVE),
    }
    if event.cluster_before is not None:
        body["hash"]["previous_cluster"] = event.cluster_before
    cause = facts.get(str(event.cause_id)) if event.cause_id else None
    if cause is not None and viewer.sees(share_group_id=cause.share_group_id, member_id=cause.member_id):
        body["cause"] = {"member": cause.member_slug, "statement": cause.raw}
    return body


def feed_page(*, viewer: Viewer, after: int, limit: int, max_bytes: int | None = None) -> dict[str, Any]:
    """Events after `after` that the viewer may see, in seq order, at most `limit` of them and (past
    the first) about `max_bytes` of signed statements, so a page of large vPDQ statements stays sane.

    `next_after` is the last seq scanned, not the last returned, so a reader that keeps asking after
    `next_after` skips invisible events without ever skipping a visible one."""
    max_bytes = settings.FEED_MAX_BYTES if max_bytes is None else max_bytes
    events: list[dict[str, Any]] = []
    cursor, scanned, budget, size = after, 0, limit * FEED_SCAN_FACTOR, 0
    full = False
    while not full and scanned < budget:
        chunk = list(Event.objects.filter(seq__gt=cursor).select_related("hash").order_by("seq")[:limit])
        if not chunk:
            break
        ids = {i for e in chunk for i in (*e.statements_before, *e.statements_after)}
        facts = statement_facts(ids | {str(e.cause_id) for e in chunk if e.cause_id}, viewer)
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
    has_more = Event.objects.filter(seq__gt=cursor).exists()
    return {"events": events, "next_after": cursor, "has_more": has_more}


def hash_detail(*, viewer: Viewer, hash_id: int) -> dict[str, Any]:
    hash_ = visible_hashes(viewer).filter(pk=hash_id).first()
    if hash_ is None:
        raise NotFound("No hash with this id is visible to you.")
    rows = list(Corroboration.objects.filter(hash=hash_).order_by("id").values_list(
        "statement_id", "retracted_at", "distance", "created_at"))
    facts = statement_facts((str(r[0]) for r in rows), viewer)
    rows = [r for r in rows if str(r[0]) in facts]  # only what the viewer may see, from here on
    live = visible_facts(viewer, [str(r[0]) for r in rows if r[1] is None], facts)
    seen = visible_facts(viewer, [str(r[0]) for r in rows], facts)
    body = hash_view(hash_, live, cluster_id=hash_.cluster_id, seen=seen,
                     links=visible_links(viewer, [hash_.pk]).get(hash_.pk),
                     state=Hash.State.ACTIVE if live else Hash.State.RETRACTED)
    changes = [r[3] for r in rows] + [r[1] for r in rows if r[1] is not None]
    body["created_at"] = min(r[3] for r in rows).isoformat()
    body["updated_at"] = max(changes).isoformat()
    body["corroborations"] = [
        {"statement_id": str(sid), "member": facts[str(sid)].member_slug, "distance": distance,
         "created_at": created.isoformat(), "retracted_at": retracted.isoformat() if retracted else None}
        for sid, retracted, distance, created in rows
    ]
    return body


def statement_get(*, member: Member, statement_id: Any) -> Statement:
    """A member sees only its own submissions here; others' statements reach it through the feed."""
    statement = Statement.objects.filter(member=member, id=statement_id).prefetch_related("labels").first()
    if statement is None:
        raise NotFound("No statement of yours has this id.")
    return statement


def statement_list(*, member: Member, state: str | None = None) -> QuerySet[Statement]:
    statements = Statement.objects.filter(member=member).order_by("-received_at", "id")
    if state:
        statements = statements.filter(state=state)
    return statements
