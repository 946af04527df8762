"""One subscription's trouble stays its own: a receiver that hangs does not hold up the dispatcher,
a secret that cannot be decrypted fails only its own deliveries, a dead receiver does not collect
a pile of incident pushes, and a member's sharing groups are read again for every batch."""

from __future__ import annotations

import time

from cryptography.fernet import Fernet

from distribution import tasks
from distribution.models import Delivery, Subscription
from distribution.services import delivering, dispatching
from hashes.models import Incident
from tests.factories import md5

from .helpers import drive, subscribe


def one_hanging_one_healthy(alice, bob, charlie, receiver_factory, clock, pipeline, *, events: int):
    """Bob's receiver hangs, charlie's answers; alice publishes `events` events both may see."""
    hanging, healthy = receiver_factory(), receiver_factory()
    stuck = subscribe(bob, hanging, after=0)
    flowing = subscribe(charlie, healthy, after=0)
    alice.submit(*[alice.statement([md5(n)]) for n in range(events)])
    pipeline()
    dispatching.dispatch(now=clock())
    hanging.behaviour.hang = True
    return hanging, healthy, stuck, flowing


def test_the_dispatcher_only_makes_incident_pushes_and_the_push_task_sends_them(
    alice, bob, homeoffice, receiver, clock, pipeline,
):
    Incident.objects.create(slug="christchurch", name="Christchurch")
    subscribe(bob, receiver, after=0)
    homeoffice.submit(homeoffice.statement([md5(1)], incident="christchurch"))
    pipeline()
    receiver.behaviour.hang = True  # a receiver that never answers cannot hold the dispatcher up

    made = dispatching.dispatch(now=clock())

    assert receiver.received == []
    (push,) = Delivery.objects.filter(pk__in=made.priority)
    assert (push.lane, push.state, push.attempt_count, push.enqueued_at is not None) == ("priority", "pending", 0, True)
    receiver.behaviour.hang = False
    assert delivering.push_deliveries(made.priority, clock=clock) == ["delivered"]
    (pushed,) = receiver.received
    assert pushed.body["data"]["lane"] == "priority"


def test_the_dispatch_task_queues_the_pushes_it_made_then_the_pumps_it_woke(alice, bob, homeoffice, receiver, pipeline):
    Incident.objects.create(slug="christchurch", name="Christchurch")
    subscribe(bob, receiver, after=0)
    homeoffice.submit(homeoffice.statement([md5(1)], incident="christchurch"))
    pipeline()

    tasks.dispatch.delay()  # Celery runs eagerly in tests: dispatch, then the push task, then the pump

    assert [r.body["data"]["lane"] for r in receiver.received] == ["priority", "main"]


def test_a_secret_that_cannot_be_decrypted_fails_only_its_own_subscription(
    alice, bob, charlie, homeoffice, receiver_factory, clock, pipeline,
):
    Incident.objects.create(slug="christchurch", name="Christchurch")
    broken_receiver, good_receiver = receiver_factory(), receiver_factory()
    broken = subscribe(bob, broken_receiver, after=0)
    subscribe(charlie, good_receiver, after=0)
    # Sealed under a key the server does not hold (as after WEBHOOK_SECRET_KEYS lost one).
    Subscription.objects.filter(pk=broken["id"]).update(
        secret_encrypted=Fernet(Fernet.generate_key()).encrypt(b"whsec_x").decode())
    alice.submit(alice.statement([md5(1)]))
    homeoffice.submit(homeoffice.statement([md5(2)], incident="christchurch"))
    pipeline()

    assert delivering.push_deliveries(dispatching.dispatch(now=clock()).priority, clock=clock) == [
        "retry", "delivered"]
    drive(clock)

    assert broken_receiver.received == []
    assert [r.body["data"]["lane"] for r in good_receiver.received] == ["priority", "main"]
    assert [e["seq"] for e in good_receiver.events("main")] == [1, 2]
    failed = Subscription.objects.get(pk=broken["id"])
    assert (failed.state, failed.cursor, failed.last_error_code) == ("active", 0, "secret_unavailable")
    attempts = Delivery.objects.filter(subscription_id=broken["id"], lane="main").get().attempts.all()
    assert [a.error for a in attempts] == ["secret_unavailable"]
    assert "whsec" not in attempts[0].detail


def test_a_receiver_that_fails_its_incident_push_gets_no_more_pushes_until_it_recovers(
    alice, bob, homeoffice, receiver, clock, pipeline,
):
    Incident.objects.create(slug="christchurch", name="Christchurch")
    subscription = subscribe(bob, receiver, after=0)
    receiver.behaviour.status = 500
    for n in range(3):
        homeoffice.submit(homeoffice.statement([md5(n)], incident="christchurch"))
        pipeline()
        delivering.push_deliveries(dispatching.dispatch(now=clock()).priority, clock=clock)

    pushes = Delivery.objects.filter(subscription_id=subscription["id"], lane="priority")
    assert pushes.count() == 1 and pushes.get().failures == 1
    receiver.behaviour.status = 200
    clock.advance(10)
    drive(clock)
    assert [e["seq"] for e in receiver.events("main")] == [1, 2, 3]


def test_a_member_removed_from_a_group_gets_nothing_more_of_it_from_the_next_batch(
    alice, bob, receiver, clock, pipeline, trusted_group, settings, monkeypatch,
):
    settings.WEBHOOK_BATCH_SIZE = 2
    subscription = subscribe(bob, receiver, after=0)
    alice.submit(*[alice.statement([md5(n)], share="trusted") for n in range(4)])
    pipeline()
    dispatching.dispatch(now=clock())
    complete = delivering.complete

    def complete_then_leave(*args, **kwargs):
        outcomes = complete(*args, **kwargs)
        trusted_group.members.remove(bob.member)  # while the pump is between two batches
        return outcomes

    monkeypatch.setattr(delivering, "complete", complete_then_leave)
    assert list(delivering.pump([subscription["id"]], clock=clock, budget=float("inf"))) == []

    assert [e["seq"] for e in receiver.events("main")] == [1, 2]
    assert Subscription.objects.get(pk=subscription["id"]).cursor == 4


def test_in_one_pump_a_receiver_that_hangs_holds_up_only_itself(
    alice, bob, charlie, receiver_factory, clock, pipeline, settings,
):
    settings.WEBHOOK_BATCH_SIZE = 2
    hanging, healthy, stuck, flowing = one_hanging_one_healthy(
        alice, bob, charlie, receiver_factory, clock, pipeline, events=10)

    more = list(delivering.pump([stuck["id"], flowing["id"]], clock=clock, budget=float("inf")))

    assert more == []
    (hung,) = hanging.received
    assert [len(r.events) for r in healthy.received] == [2, 2, 2, 2, 2]
    # Every batch of the healthy receiver came while the other POST hung (the timeout is 2 s).
    assert healthy.received[-1].at < hung.at + settings.WEBHOOK_TIMEOUT_SECONDS
    assert Subscription.objects.get(pk=flowing["id"]).cursor == 10
    waiting = Delivery.objects.get(subscription_id=stuck["id"])
    assert (waiting.state, waiting.failures, waiting.last_error) == ("pending", 1, "timeout")
    hanging.release.set()


def test_a_send_that_raises_fails_only_its_own_subscription(
    alice, bob, charlie, receiver_factory, clock, pipeline, monkeypatch,
):
    broken_receiver, good_receiver = receiver_factory(), receiver_factory()
    broken = subscribe(bob, broken_receiver, after=0)
    good = subscribe(charlie, good_receiver, after=0)
    alice.submit(alice.statement([md5(1)]))
    pipeline()
    dispatching.dispatch(now=clock())
    post = delivering.transport.post

    def post_or_raise(url, *args, **kwargs):
        if url == broken_receiver.url:
            raise RuntimeError("a bug in sending")
        return post(url, *args, **kwargs)

    monkeypatch.setattr(delivering.transport, "post", post_or_raise)
    assert list(delivering.pump([broken["id"], good["id"]], clock=clock, budget=float("inf"))) == []

    assert [e["seq"] for e in good_receiver.events("main")] == [1]
    failed = Subscription.objects.get(pk=broken["id"])
    assert (failed.cursor, failed.last_error_code) == (0, "send_failed")
    assert "a bug" not in failed.last_error_message


def test_a_url_that_is_not_ascii_is_refused(bob):
    response = bob.api.post("/api/v1/subscriptions/", {"url": "http://127.0.0.1:9/hooks/é"}, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "url_invalid")


def test_once_its_budget_is_spent_a_pump_hands_on_its_subscriptions_without_waiting_for_a_hung_post(
    alice, bob, charlie, receiver_factory, clock, pipeline, settings,
):
    settings.WEBHOOK_BATCH_SIZE = 1
    hanging, healthy, stuck, flowing = one_hanging_one_healthy(
        alice, bob, charlie, receiver_factory, clock, pipeline, events=200)
    handed: list[tuple[list, float]] = []

    for ids in delivering.pump([stuck["id"], flowing["id"]], clock=clock, budget=0.3):
        handed.append((ids, time.time()))

    (hung,) = hanging.received
    ((ids, at),) = handed
    assert [str(i) for i in ids] == [flowing["id"]]
    assert at < hung.at + settings.WEBHOOK_TIMEOUT_SECONDS - 1  # long before the hung POST timed out
    assert 0 < Subscription.objects.get(pk=flowing["id"]).cursor < 200
    hanging.release.set()
