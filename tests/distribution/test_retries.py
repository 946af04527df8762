"""A receiver that fails: 500, hangs past the timeout, 429/503 with Retry-After, 410, a redirect, or
down entirely for hours. The test moves the clock from one due attempt to the next, so three days of
Standard Webhooks retries take a second; every outcome is checked from the receiver's side and as the
member sees it through the API."""

from __future__ import annotations

from datetime import timedelta

import pytest

from distribution.models import Delivery, DeliveryAttempt, Subscription
from tests.factories import md5

from .helpers import advance_to_next_attempt, drive, in_flight, subscribe

SCHEDULE = [0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]


def publish(actor, pipeline, *numbers: int) -> None:
    actor.submit(*[actor.statement([md5(n)]) for n in numbers])
    pipeline()


def seqs_received(receiver) -> list[int]:
    return [event["seq"] for event in receiver.events()]


def attempt_gaps(subscription_id) -> list[float]:
    delivery = Delivery.objects.get(subscription_id=subscription_id, lane="main")
    starts = list(DeliveryAttempt.objects.filter(delivery=delivery).order_by("number").values_list("started_at", flat=True))
    return [(later - earlier).total_seconds() for earlier, later in zip(starts, starts[1:])]


def test_a_failing_receiver_is_retried_on_the_schedule_then_disabled_and_resumes_when_re_enabled(
    alice, bob, receiver, clock, pipeline,
):
    subscription = subscribe(bob, receiver, after=0)
    publish(alice, pipeline, 1, 2, 3)
    receiver.behaviour.status = 500

    drive(clock)
    for _ in range(len(SCHEDULE) - 1):
        advance_to_next_attempt(clock, subscription["id"])
        drive(clock)

    # Ten attempts of one batch, one webhook-id, spaced as the schedule says give or take the jitter.
    assert len(receiver.received) == len(SCHEDULE)
    assert len({r.webhook_id for r in receiver.received}) == 1 and all(r.v1 and r.v1a for r in receiver.received)
    for gap, step in zip(attempt_gaps(subscription["id"]), SCHEDULE[1:]):
        assert step * 0.9 <= gap <= step * 1.1 + 1
    # Exhausted: disabled, and the member can see why.
    body = bob.api.get(f"/api/v1/subscriptions/{subscription['id']}/").json()
    assert (body["state"], body["state_reason"]) == ("disabled", "retries_exhausted")
    assert (body["last_error"]["code"], body["last_error"]["status"]) == ("http_error", 500)
    assert body["in_flight"]["failures"] == len(SCHEDULE) and body["in_flight"]["next_attempt_at"] is None
    assert body["cursor"] == 0 and body["backlog"] == 3
    clock.advance(7 * 86400)
    publish(alice, pipeline, 4)
    drive(clock)
    assert len(receiver.received) == len(SCHEDULE)  # disabled means silent

    receiver.behaviour.status = 204
    response = bob.api.patch(f"/api/v1/subscriptions/{subscription['id']}/", {"state": "active"}, format="json")
    drive(clock)

    assert response.json()["state"] == "active"
    assert receiver.batches()[0].webhook_id == receiver.received[0].webhook_id  # the same batch, not a new one
    assert seqs_received(receiver) == [1, 2, 3, 4]
    assert Subscription.objects.get(pk=subscription["id"]).cursor == 4


def test_a_receiver_that_hangs_past_the_timeout_is_cut_off_and_retried(
    alice, bob, receiver, clock, pipeline, settings,
):
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.3
    subscription = subscribe(bob, receiver, after=0)
    publish(alice, pipeline, 1)
    receiver.behaviour.hang = True

    drive(clock)
    first = DeliveryAttempt.objects.get()
    receiver.behaviour.hang = False
    # Two seconds before the retry is due (about 5 s after the failure): the clock is the real time
    # moved on, so a fixed step would leave less room the slower the machine runs this test.
    clock.advance_to(first.next_attempt_at - timedelta(seconds=2))
    drive(clock)
    assert receiver.batches() == []  # 5 s have not passed yet
    advance_to_next_attempt(clock, subscription["id"])
    drive(clock)

    assert (first.error, first.status) == ("timeout", None)
    failed_at = first.started_at + timedelta(milliseconds=first.duration_ms)
    assert 4.5 - 0.1 <= (first.next_attempt_at - failed_at).total_seconds() <= 5.5 + 0.1
    assert [r.webhook_id for r in receiver.received] == [receiver.received[0].webhook_id] * 2
    assert seqs_received(receiver) == [1]


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_on_429_and_503_is_honoured_over_a_shorter_schedule_step(
    alice, bob, receiver, clock, pipeline, status,
):
    subscription = subscribe(bob, receiver, after=0)
    publish(alice, pipeline, 1)
    receiver.behaviour.status, receiver.behaviour.headers = status, {"Retry-After": "3600"}

    drive(clock)
    receiver.behaviour.status, receiver.behaviour.headers = 200, {}
    clock.advance(600)  # past the schedule's 5 s, still inside what the receiver asked for
    drive(clock)
    assert len(receiver.received) == 1
    delivery = advance_to_next_attempt(clock, subscription["id"])
    drive(clock)

    attempt = DeliveryAttempt.objects.get(number=1)
    assert (attempt.status, attempt.retry_after) == (status, 3600)
    assert delivery.next_attempt_at - attempt.started_at >= timedelta(seconds=3600)
    assert seqs_received(receiver) == [1]


def test_retry_after_on_any_other_failure_is_not_a_reason_to_wait_longer(alice, bob, receiver, clock, pipeline):
    subscription = subscribe(bob, receiver, after=0)
    publish(alice, pipeline, 1)
    receiver.behaviour.status, receiver.behaviour.headers = 500, {"Retry-After": "3600"}

    drive(clock)

    attempt = DeliveryAttempt.objects.get(number=1)
    assert in_flight(subscription["id"]).next_attempt_at - attempt.started_at < timedelta(seconds=60)

def test_a_410_disables_the_subscription_at_once_and_re_enabling_resumes_from_the_cursor(
    alice, bob, receiver, clock, pipeline,
):
    subscription = subscribe(bob, receiver, after=0)
    publish(alice, pipeline, 1)
    drive(clock)
    receiver.behaviour.status = 410
    publish(alice, pipeline, 2, 3)

    drive(clock)
    clock.advance(3 * 86400)
    drive(clock)

    body = bob.api.get(f"/api/v1/subscriptions/{subscription['id']}/").json()
    assert (body["state"], body["state_reason"], body["cursor"]) == ("disabled", "endpoint_gone", 1)
    assert (body["last_error"]["status"], len(receiver.received)) == (410, 2)

    receiver.behaviour.status = 200
    bob.api.patch(f"/api/v1/subscriptions/{subscription['id']}/", {"state": "active"}, format="json")
    drive(clock)
    assert seqs_received(receiver) == [1, 2, 3]


def test_a_redirect_is_not_followed_and_counts_as_a_failure(
    alice, bob, receiver, receiver_factory, clock, pipeline,
):
    elsewhere = receiver_factory()
    subscription = subscribe(bob, receiver, after=0)
    publish(alice, pipeline, 1)
    receiver.behaviour.status, receiver.behaviour.headers = 307, {"Location": elsewhere.url}

    drive(clock)

    assert elsewhere.received == []
    attempt = DeliveryAttempt.objects.get()
    assert (attempt.error, attempt.status) == ("redirect", 307)
    assert in_flight(subscription["id"]).failures == 1
    assert Subscription.objects.get(pk=subscription["id"]).cursor == 0


def test_a_receiver_down_for_hours_gets_everything_in_order_once_per_webhook_id_when_it_is_back(
    alice, bob, receiver, clock, pipeline, settings,
):
    settings.WEBHOOK_BATCH_SIZE = 5
    subscription = subscribe(bob, receiver, after=0)
    publish(alice, pipeline, *range(1, 4))
    drive(clock)
    receiver.stop()
    publish(alice, pipeline, *range(4, 13))

    drive(clock)
    for _ in range(4):  # 5 s, 5 min, 30 min, 2 h: all refused
        advance_to_next_attempt(clock, subscription["id"])
        publish(alice, pipeline, 100 + _)
        drive(clock)
    refused = list(DeliveryAttempt.objects.filter(error="connect_failed").values_list("number", flat=True))
    receiver.start()
    advance_to_next_attempt(clock, subscription["id"])
    drive(clock)

    assert refused == [1, 2, 3, 4, 5]
    assert Subscription.objects.get(pk=subscription["id"]).state == "active"
    assert seqs_received(receiver) == list(range(1, 17))
    assert all(r.v1 and r.v1a for r in receiver.received)
    batches = receiver.batches()
    assert [[e["seq"] for e in b.events][0] for b in batches] == [1, 4, 6, 11, 16]  # windows of 5 seqs
    assert len(receiver.received) == len(batches)


def test_an_address_that_is_refused_at_send_time_is_a_failure_and_nothing_is_sent(
    alice, bob, receiver, clock, pipeline, settings,
):
    subscription = subscribe(bob, receiver, after=0)
    publish(alice, pipeline, 1)
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False  # as if its DNS now pointed inside

    drive(clock)

    assert receiver.received == []
    assert DeliveryAttempt.objects.get().error == "target_forbidden"
    body = bob.api.get(f"/api/v1/subscriptions/{subscription['id']}/").json()
    assert body["last_error"]["code"] == "target_forbidden" and body["state"] == "active"


def test_fixing_the_url_retries_the_waiting_batch_at_once_with_a_fresh_schedule(
    alice, bob, receiver, receiver_factory, clock, pipeline,
):
    subscription = subscribe(bob, receiver, after=0)
    publish(alice, pipeline, 1)
    receiver.stop()
    drive(clock)
    advance_to_next_attempt(clock, subscription["id"])
    drive(clock)
    fixed = receiver_factory()
    fixed.secrets = receiver.secrets

    bob.api.patch(f"/api/v1/subscriptions/{subscription['id']}/", {"url": fixed.url}, format="json")
    drive(clock)

    assert seqs_received(fixed) == [1]
    assert Delivery.objects.get().attempt_count == 3
