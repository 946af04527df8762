"""Incidents go first: an incident event is pushed at once on the priority lane to every subscription
that may see it, ahead of whatever backlog its main lane has, and arrives again in its place on the
main lane; receivers drop the repeat by the event's `id`."""

from __future__ import annotations

from distribution.models import Delivery
from distribution.services import delivering, dispatching
from distribution.services.heads import announce
from hashes.services.feed import feed_head
from hashes.models import Incident
from tests.factories import md5, pdq

from .helpers import dispatch, drive, subscribe


def test_an_incident_event_overtakes_a_backlog_then_arrives_again_in_its_place(
    alice, bob, homeoffice, receiver, clock, pipeline, settings,
):
    settings.WEBHOOK_BATCH_SIZE = 10
    Incident.objects.create(slug="christchurch", name="Christchurch")
    subscribe(bob, receiver, after=0)
    alice.submit(*[alice.statement([md5(n)]) for n in range(50)])
    pipeline()
    homeoffice.submit(homeoffice.statement([pdq(7)], incident="christchurch"))
    pipeline()

    # Only the dispatcher runs: the main lane has not sent anything yet.
    dispatch(clock)

    (pushed,) = receiver.received
    assert pushed.v1 and pushed.v1a and pushed.body["data"]["lane"] == "priority"
    (incident_event,) = pushed.events
    assert (incident_event["seq"], incident_event["hash"]["value"]) == (51, pdq(7)["value"])

    drive(clock)

    main = receiver.events("main")
    assert [e["seq"] for e in main] == list(range(1, 52))
    assert main[-1] == incident_event  # the same event, same id, in its place
    seen: dict[str, dict] = {}
    for record in receiver.received:
        for event in record.events:
            seen.setdefault(event["id"], event)
    assert len(seen) == 51  # a receiver deduplicating by event id has each event once


def test_the_priority_lane_goes_ahead_even_while_the_main_lane_is_failing(
    alice, bob, homeoffice, receiver, clock, pipeline,
):
    Incident.objects.create(slug="christchurch", name="Christchurch")
    subscription = subscribe(bob, receiver, after=0)
    alice.submit(alice.statement([md5(1)]))
    pipeline()
    receiver.behaviour.status = 500
    drive(clock)  # the main lane now waits for its 5 s retry
    receiver.behaviour.status = 200

    homeoffice.submit(homeoffice.statement([md5(2)], incident="christchurch"))
    pipeline()
    drive(clock)

    lanes = [(r.body["data"]["lane"], r.status) for r in receiver.received]
    assert lanes == [("main", 500), ("priority", 200)]
    assert bob.api.get(f"/api/v1/subscriptions/{subscription['id']}/").json()["cursor"] == 0


def test_incident_pushes_respect_visibility_and_filters(
    alice, bob, charlie, trusted_group, receiver_factory, clock, pipeline,
):
    Incident.objects.create(slug="christchurch", name="Christchurch")
    bob_inbox, charlie_inbox, charlie_pdq = receiver_factory(), receiver_factory(), receiver_factory()
    subscribe(bob, bob_inbox, after=0)
    subscribe(charlie, charlie_inbox, after=0)
    pdq_only = subscribe(charlie, charlie_pdq, after=0, filters={"signal_types": ["pdq"]})

    alice.submit(alice.statement([md5(1)], share="trusted", incident="christchurch"))
    alice.submit(alice.statement([md5(2)], incident="christchurch"))
    pipeline()
    dispatch(clock)

    assert sorted(e["hash"]["value"] for e in bob_inbox.events("priority")) == [md5(1)["value"], md5(2)["value"]]
    assert [e["hash"]["value"] for e in charlie_inbox.events("priority")] == [md5(2)["value"]]
    assert charlie_pdq.received == []
    assert not Delivery.objects.filter(subscription_id=pdq_only["id"]).exists()  # nor was a push made for it


def test_a_failed_push_the_main_lane_has_since_delivered_is_not_sent_again(
    alice, bob, homeoffice, receiver, clock, pipeline,
):
    Incident.objects.create(slug="christchurch", name="Christchurch")
    subscription = subscribe(bob, receiver, after=0)
    homeoffice.submit(homeoffice.statement([md5(1)], incident="christchurch"))
    pipeline()
    receiver.behaviour.status = 503
    dispatch(clock)  # the push fails and waits for its retry
    receiver.behaviour.status = 200
    list(delivering.pump([subscription["id"]], clock=clock, budget=float("inf")))  # the main lane delivers it

    clock.advance(60)
    drive(clock)

    assert [(r.body["data"]["lane"], r.status) for r in receiver.received] == [("priority", 503), ("main", 200)]
    assert Delivery.objects.get(lane="priority").state == "superseded"


def test_each_incident_event_is_pushed_once_however_often_the_dispatcher_runs(
    alice, bob, receiver, clock, pipeline,
):
    Incident.objects.create(slug="christchurch", name="Christchurch")
    subscribe(bob, receiver, after=0)
    alice.submit(alice.statement([md5(1)], incident="christchurch"))
    pipeline()

    for _ in range(3):
        dispatch(clock)

    assert Delivery.objects.filter(lane="priority").count() == 1


def test_an_incident_event_the_main_lane_already_delivered_is_not_pushed(alice, bob, receiver, clock, pipeline):
    Incident.objects.create(slug="christchurch", name="Christchurch")
    subscription = subscribe(bob, receiver, after=0)
    alice.submit(alice.statement([md5(1)], incident="christchurch"))
    pipeline()
    announce(feed_head())
    list(delivering.pump([subscription["id"]], clock=clock, budget=float("inf")))  # before any dispatcher looked
    alice.submit(alice.statement([md5(2)], incident="christchurch"))
    pipeline()

    dispatch(clock)

    assert [e["seq"] for e in receiver.events("main")] == [1]
    assert [e["seq"] for e in receiver.events("priority")] == [2]


def test_a_push_whose_events_changed_before_it_was_sent_is_superseded_not_sent(
    alice, bob, trusted_group, receiver, clock, pipeline,
):
    """A receiver drops a webhook-id it has seen, so a push must go out with the body it was made with
    or not at all: the main lane then brings what is left of it."""
    Incident.objects.create(slug="christchurch", name="Christchurch")
    subscribe(bob, receiver, after=0)
    alice.submit(alice.statement([md5(1)], share="trusted", incident="christchurch"),
                 alice.statement([md5(2)], incident="christchurch"))
    pipeline()
    made = dispatching.dispatch(now=clock()).priority
    trusted_group.members.remove(bob.member)

    assert delivering.push_deliveries(made, clock=clock) == []

    assert Delivery.objects.get(pk__in=made).state == "superseded"
    drive(clock)
    assert receiver.events("priority") == []
    assert [e["hash"]["value"] for e in receiver.events("main")] == [md5(2)["value"]]
