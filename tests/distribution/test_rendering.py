"""The shortcut behind fan-out: an event rendered once per distinct way of seeing it, shared by every
subscription that sees it that way, must be exactly what `render_event` gives each viewer."""

from __future__ import annotations

import json

from distribution import rendering
from hashes.models import Event, Incident
from hashes.selectors import render_event, statement_facts, visible_links
from hashes.visibility import Viewer
from members.models import SharingGroup
from tests.factories import md5, pdq

EVERYTHING = rendering.Filters()
GROUP_PDQ = (2**64 - 1) << 192  # far from every other PDQ here


def direct(viewer: Viewer) -> list[dict]:
    out = []
    for event in Event.objects.select_related("hash").order_by("seq"):
        ids = {*event.statements_before, *event.statements_after, *([str(event.cause_id)] if event.cause_id else [])}
        rendered = render_event(event, viewer, statement_facts(ids, viewer), visible_links(viewer, [event.hash_id]))
        if rendered is not None:
            out.append(rendered)
    return out


def test_shared_rendering_is_exactly_render_event_for_every_viewer(
    alice, bob, charlie, homeoffice, trusted_group, pipeline,
):
    Incident.objects.create(slug="christchurch", name="Christchurch")
    alice.submit(alice.statement([md5(1), pdq(1)], share="trusted", labels=["recruitment"], jti="g"),
                 alice.statement([pdq(GROUP_PDQ)], share="trusted"))
    homeoffice.submit(homeoffice.statement([md5(1)], labels=["glorification"], incident="christchurch"))
    charlie.submit(charlie.statement([md5(2), pdq(0xFFF000)], jti="c"))
    pipeline()
    # A variant 12 bits from charlie's PDQ joins its family: a link that only some viewers may see.
    bob.submit(bob.statement([pdq(1)], share="trusted"), bob.statement([md5(2)]),
               bob.statement([pdq(0xFFF000 ^ 0xFFF)], share="trusted"))
    # ...and a public variant of a group-only PDQ: its link is visible to the group only.
    bob.submit(bob.statement([pdq(GROUP_PDQ ^ 0xFFF)]))
    pipeline()
    alice.submit(alice.retraction("g"))
    charlie.submit(charlie.retraction("c"))
    pipeline()

    # Interleave the viewers so that each one renders from caches the others filled.
    for _ in range(2):
        for actor in (charlie, alice, homeoffice, bob):
            viewer = Viewer.for_member(actor.member)
            shared = rendering.range_batch(viewer, EVERYTHING, after=0, through=Event.objects.count()).events
            assert [json.loads(r.fragment) for r in shared] == direct(viewer), actor.slug
    assert len(direct(Viewer.for_member(bob.member))) > len(direct(Viewer.for_member(charlie.member))) > 0
    def links(actor, value: int) -> list:
        return [e["hash"]["links"] for e in direct(Viewer.for_member(actor.member)) if e["hash"]["value"] == pdq(value)["value"]]

    # The group's variant of charlie's PDQ links to it, for the group; charlie does not see it at all.
    assert [bool(found) for found in links(bob, 0xFFF000 ^ 0xFFF)] == [True] and links(charlie, 0xFFF000 ^ 0xFFF) == []
    # A consortium variant of a group-only PDQ never meets it: no link, for anyone (non-interference).
    assert links(bob, GROUP_PDQ ^ 0xFFF) == links(charlie, GROUP_PDQ ^ 0xFFF) == [[]]


def test_retractions_carry_the_labels_and_count_the_hash_had(alice, bob, pipeline):
    alice.submit(alice.statement([md5(1)], labels=["recruitment"], jti="a"))
    bob.submit(bob.statement([md5(1)], labels=["recruitment"], jti="b"))
    pipeline()
    alice.submit(alice.retraction("a"))
    pipeline()
    bob.submit(bob.retraction("b"))
    pipeline()

    viewer = Viewer.for_member(alice.member)
    events = rendering.range_batch(viewer, EVERYTHING, after=0, through=10).events

    assert [(e.type, e.corroboration, sorted(e.labels)) for e in events] == [
        ("hash.added", 1, ["recruitment"]), ("hash.updated", 2, ["recruitment"]),
        ("hash.updated", 2, ["recruitment"]), ("hash.retracted", 1, ["recruitment"]),
    ]
    labelled = rendering.Filters(labels=frozenset({"recruitment"}), min_corroboration=2)
    assert [e.type for e in events if e.passes(labelled)] == ["hash.updated", "hash.updated"]


def test_an_incident_counts_only_through_a_statement_the_viewer_sees(
    alice, bob, charlie, trusted_group, pipeline,
):
    Incident.objects.create(slug="christchurch", name="Christchurch")
    alice.submit(alice.statement([md5(1)], share="trusted", incident="christchurch"))
    charlie.submit(charlie.statement([md5(1)]))
    pipeline()
    incident_only = rendering.Filters(incident_only=True)

    def incident_events(actor) -> list[str]:
        viewer = Viewer.for_member(actor.member)
        events = rendering.range_batch(viewer, EVERYTHING, after=0, through=10).events
        return [e.type for e in events if e.passes(incident_only)]

    # The group's statement came first, so charlie's made a consortium hash of its own: bob sees the
    # group's hash (naming the incident) and charlie's (not naming it).
    assert incident_events(bob) == ["hash.added"]
    assert incident_events(charlie) == []


def test_a_batch_looks_through_a_bounded_number_of_windows_and_says_how_far_it_looked(
    alice, bob, trusted_group, charlie, pipeline,
):
    alice.submit(*[alice.statement([md5(n)], share="trusted") for n in range(30)])
    alice.submit(alice.statement([md5(99)]))
    pipeline()
    viewer = Viewer.for_member(charlie.member)

    first = rendering.next_batch(viewer, EVERYTHING, after=0, size=5, windows=4, max_bytes=10**6)
    second = rendering.next_batch(viewer, EVERYTHING, after=first.scanned_to, size=5, windows=4, max_bytes=10**6)

    assert (first.events, first.scanned_to) == ((), 20)
    assert ([e.seq for e in second.events], second.scanned_to) == ([31], 31)


def test_batches_follow_aligned_windows_so_a_lagging_subscription_falls_into_step(alice, bob, pipeline):
    alice.submit(*[alice.statement([md5(n)]) for n in range(25)])
    pipeline()
    viewer = Viewer.for_member(bob.member)

    def batches(after: int) -> list[list[int]]:
        out = []
        while (batch := rendering.next_batch(viewer, EVERYTHING, after=after, size=10, windows=1,
                                             max_bytes=10**6)).events:
            out.append([e.seq for e in batch.events])
            after = batch.scanned_to
        return out

    in_step, lagging = batches(0), batches(3)

    assert [b[0] for b in in_step] == [1, 11, 21] and in_step[-1][-1] == 25
    assert [b[0] for b in lagging] == [4, 11, 21]
    shared = [rendering.next_batch(viewer, EVERYTHING, after=10, size=10, windows=1, max_bytes=10**6) for _ in "ab"]
    bodies = [rendering.events_body(lane="main", events=b.events, key=b.key) for b in shared]
    assert bodies[0] == bodies[1] and json.loads(bodies[0])["data"]["first_seq"] == 11


def test_a_batch_stops_growing_past_the_byte_limit_but_always_holds_one_event(alice, bob, pipeline):
    alice.submit(*[alice.statement([md5(n)]) for n in range(6)])
    pipeline()
    viewer = Viewer.for_member(bob.member)
    one = len(rendering.range_batch(viewer, EVERYTHING, after=0, through=1).events[0].fragment)

    cut = rendering.next_batch(viewer, EVERYTHING, after=0, size=10, windows=1, max_bytes=int(one * 2.5))
    tiny = rendering.next_batch(viewer, EVERYTHING, after=0, size=10, windows=1, max_bytes=1)

    assert ([e.seq for e in cut.events], cut.scanned_to) == ([1, 2], 2)
    assert ([e.seq for e in tiny.events], tiny.scanned_to) == ([1], 1)


def test_viewers_for_many_members_are_exactly_what_viewer_for_member_builds(alice, bob, charlie, trusted_group):
    SharingGroup.objects.create(slug="other", name="Other").members.add(bob.member)
    members = [alice.member, bob.member, charlie.member]

    assert rendering.viewers_for(members) == {member.pk: Viewer.for_member(member) for member in members}


def test_a_statement_evicted_from_the_cache_never_counts_as_invisible(alice, bob, pipeline, monkeypatch):
    """The statement cache is bounded and shared by a worker's threads: an entry can go between
    being read and being used. Visibility must come from what was read, never from the cache."""
    alice.submit(*[alice.statement([md5(n)]) for n in range(1, 21)])
    bob.submit(*[bob.statement([md5(n)]) for n in range(1, 6)])  # corroborations: hash.updated
    pipeline()
    viewer = Viewer.for_member(bob.member)
    expected = [json.loads(r.fragment) for r in rendering.range_batch(viewer, EVERYTHING, after=0, through=25).events]
    assert len(expected) == 25
    rendering.clear_caches()
    # A cache that keeps a single statement: every entry but the last read is gone before rendering.
    monkeypatch.setattr(rendering, "_statements", rendering._Bounded(1))

    batch = rendering.next_batch(viewer, EVERYTHING, after=0, size=500, windows=1, max_bytes=10**9)

    assert [json.loads(r.fragment) for r in batch.events] == expected
