"""The feed page is read with plain SQL (feed_events, statement_facts, visible_links): its pages must be
exactly what reading it through the ORM gave, for every viewer, every cursor, every page size and
byte bound, over visible, invisible, retracted, disputed, feedback, labelled, video and linked events."""

from __future__ import annotations

import orjson

from hashes.models import Event, HashLink, Incident, Statement
from hashes.selectors import FEED_SCAN_FACTOR, StatementFacts, feed_page, render_event, statement_facts, visible_links
from hashes.visibility import Viewer, visible_hashes
from tests.factories import md5, pdq, vpdq

GROUP_PDQ = (2**64 - 1) << 192  # far from every other PDQ here


def orm_statement_facts(ids, viewer: Viewer) -> dict[str, StatementFacts]:
    """statement_facts as it was read through the ORM."""
    visible = Statement.objects.filter(viewer.statement_q(), id__in=set(ids))
    labels: dict[str, list[str]] = {}
    for statement_id, slug in Statement.labels.through.objects.filter(statement__in=visible).values_list(
            "statement_id", "label__slug"):
        labels.setdefault(str(statement_id), []).append(slug)
    return {
        str(s.id): StatementFacts(
            id=str(s.id), jti=s.jti, kind=s.kind, member_id=s.member_id, member_slug=s.member.slug,
            member_kind=s.member.kind, share_group_id=s.share_group_id, content_type=s.content_type, raw=s.raw,
            labels=tuple(sorted(labels.get(str(s.id), ()))), verdict=s.verdict, incident_id=s.incident_id)
        for s in visible.select_related("member")
    }


def orm_links(viewer: Viewer, hash_ids) -> dict[int, list[dict]]:
    links: dict[int, list[dict]] = {}
    rows = HashLink.objects.filter(hash_id__in=set(hash_ids)).order_by("id")
    visible = set(visible_hashes(viewer).values_list("pk", flat=True))
    for link in rows:
        if link.linked_to_id in visible:
            body = {"hash": link.linked_to_id}
            if link.distance is not None:
                body["distance"] = link.distance
            else:
                body.update(query_match_percent=link.query_match_percent, stored_match_percent=link.stored_match_percent)
            links.setdefault(link.hash_id, []).append(body)
    return links


def orm_feed_page(*, viewer: Viewer, after: int, limit: int, max_bytes: int) -> dict:
    """feed_page as it read the feed through the ORM, model instances and all."""
    events: list[dict] = []
    cursor, scanned, budget, size = after, 0, limit * FEED_SCAN_FACTOR, 0
    full = False
    while not full and scanned < budget:
        chunk = list(Event.objects.filter(seq__gt=cursor).select_related("hash").order_by("seq")[:limit])
        if not chunk:
            break
        facts = orm_statement_facts({i for e in chunk for i in e.refs()}, viewer)
        links = orm_links(viewer, {e.hash_id for e in chunk})
        for event in chunk:
            rendered = render_event(event, viewer, facts, links)
            if rendered is not None:
                weight = sum(len(s) for s in rendered["hash"]["statements"])
                if events and size + weight > max_bytes:
                    full = True
                    break
                events.append(rendered)
                size += weight
            cursor, scanned = event.seq, scanned + 1
            if len(events) == limit or scanned == budget:
                full = len(events) == limit
                break
    return {"events": events, "next_after": cursor, "has_more": Event.objects.filter(seq__gt=cursor).exists()}


def test_the_plain_sql_feed_is_byte_for_byte_the_orm_feed(
        alice, bob, charlie, homeoffice, trusted_group, pipeline):
    Incident.objects.create(slug="christchurch", name="Christchurch")
    alice.submit(alice.statement([md5(1), pdq(1)], share="trusted", labels=["recruitment"], jti="g"),
                 alice.statement([pdq(GROUP_PDQ)], share="trusted"),
                 alice.statement([vpdq(1, 2, 3)], content_type="video", jti="v"))
    homeoffice.submit(homeoffice.statement([md5(1)], labels=["glorification", "recruitment"], incident="christchurch"))
    charlie.submit(charlie.statement([md5(2), pdq(0xFFF000)], jti="c"))
    pipeline()
    bob.submit(bob.statement([pdq(1)], share="trusted"), bob.statement([md5(2)]),
               bob.statement([pdq(0xFFF000 ^ 0xFFF)], share="trusted"))
    bob.submit(bob.statement([pdq(GROUP_PDQ ^ 0xFFF)]))
    pipeline()
    # Feedback and disputes, one of them seen by the group only.
    bob.submit(bob.feedback(md5(2), "disagree", reasons=["newsworthy"], share="trusted"))
    homeoffice.submit(homeoffice.feedback(md5(2), "seen"))
    charlie.submit(charlie.feedback(md5(1), "disagree", reasons=["low_quality"]))
    pipeline()
    alice.submit(alice.retraction("g"))
    charlie.submit(charlie.retraction("c"))
    pipeline()
    # What administrators and merges write on events, whatever the scenario did.
    last = Event.objects.order_by("-seq").first()
    Event.objects.filter(pk=last.pk).update(labels_override=["instruction"], cluster_before=last.cluster_id_at + 1000)
    assert HashLink.objects.exists() and Event.objects.exclude(disputes=None).exists()
    assert Event.objects.filter(change="feedback").exists() and Event.objects.filter(hash__signal_type="vpdq").exists()

    head = Event.objects.order_by("-seq").values_list("seq", flat=True).first()
    viewers = [Viewer.for_member(actor.member) for actor in (alice, bob, charlie, homeoffice)]
    viewers += [viewers[1].within(None), viewers[1].within(trusted_group.pk)]
    for viewer in viewers:
        seen = set()
        for after in range(head + 1):
            for limit, max_bytes in ((1, 8 << 20), (2, 1), (3, 8 << 20), (1000, 2000), (1000, 8 << 20)):
                page = feed_page(viewer=viewer, after=after, limit=limit, max_bytes=max_bytes)
                expected = orm_feed_page(viewer=viewer, after=after, limit=limit, max_bytes=max_bytes)
                assert orjson.dumps(page) == orjson.dumps(expected), (viewer, after, limit, max_bytes)
                seen.update(e["type"] for e in page["events"])
        assert "hash.added" in seen
    everything = feed_page(viewer=viewers[1], after=0, limit=1000)["events"]
    assert {"hash.added", "hash.updated", "hash.retracted"} <= {e["type"] for e in everything}
    assert any(e["hash"]["dispute"] for e in everything) and any(e["hash"]["links"] for e in everything)


def test_statement_facts_reads_only_what_the_viewer_may_see(alice, bob, charlie, trusted_group, pipeline):
    alice.submit(alice.statement([md5(1)], share="trusted", labels=["recruitment", "glorification"]),
                 alice.statement([md5(2)]))
    charlie.submit(charlie.statement([md5(3)]))
    pipeline()
    ids = {str(pk) for pk in Statement.objects.values_list("id", flat=True)}
    for actor in (alice, bob, charlie):
        viewer = Viewer.for_member(actor.member)
        for narrowed in (viewer, viewer.within(None)):
            assert statement_facts(ids, narrowed) == orm_statement_facts(ids, narrowed)
    assert len(statement_facts(ids, Viewer.for_member(charlie.member))) == 2
    assert len(statement_facts(ids, Viewer.for_member(bob.member).within(trusted_group.pk))) == 1
    assert statement_facts(set(), Viewer.for_member(bob.member)) == {}
    assert visible_links(Viewer.for_member(bob.member), []) == {}
