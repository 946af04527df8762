"""What distribution tests do again and again: a clock the test moves, subscribing as a member,
and `drive`, which does in this process what the dispatcher, pumps and sweep do in workers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from distribution.models import Delivery, Subscription
from distribution.services import delivering, dispatching
from tests.actors import Actor

from .receiver import Receiver


class Clock:
    """The time the services see: the real time plus however far the test has moved it, so it never
    runs behind what the API stamps with the real time. Signatures always carry the real time,
    which is what receivers check them against."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return timezone.now() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)

    def advance_to(self, when: datetime) -> None:
        self.offset += max(timedelta(), when - self())


def subscribe(actor: Actor, receiver: Receiver, *, expect: int = 201, **body: Any) -> dict[str, Any]:
    """Subscribe through the API as the member does, and give the receiver the secret."""
    response = actor.api.post("/api/v1/subscriptions/", {"url": receiver.url, **body}, format="json")
    assert response.status_code == expect, response.content
    created = response.json()
    if expect == 201:
        receiver.secrets.append(created["secret"])
    return created


def _progress() -> tuple:
    return (
        tuple(Subscription.objects.order_by("pk").values_list("cursor", "state")),
        tuple(Delivery.objects.order_by("pk").values_list("state", "attempt_count")),
    )


def drive(clock: Clock, *, rounds: int = 100) -> None:
    """Run the sweep, every pump and every due single delivery at the clock's time, until nothing
    changes any more."""
    for _ in range(rounds):
        before = _progress()
        dispatching.sweep(now=clock())
        for subscription_id in Subscription.objects.values_list("pk", flat=True):
            list(delivering.pump([subscription_id], clock=clock, budget=float("inf")))
        delivering.push_deliveries(list(Delivery.objects.filter(state=Delivery.State.PENDING).exclude(
            lane=Delivery.Lane.MAIN).values_list("pk", flat=True)), clock=clock)
        if _progress() == before:
            return
    raise AssertionError("distribution did not settle")


def dispatch(clock: Clock) -> list[str]:
    """What the dispatch task does: make the incident pushes, then send them; their outcomes."""
    return delivering.push_deliveries(dispatching.dispatch(now=clock()).priority, clock=clock)


def in_flight(subscription_id: Any) -> Delivery | None:
    return Delivery.objects.filter(subscription_id=subscription_id, lane=Delivery.Lane.MAIN,
                                   state=Delivery.State.PENDING).first()


def feed_events(actor: Actor) -> list[dict[str, Any]]:
    """Every event of the member's feed, as the feed API renders it for the member: the reference
    for what its webhooks may carry."""
    events, after = [], 0
    while True:
        page = actor.feed(after=after)
        events += page["events"]
        after = page["next_after"]
        if not page["has_more"]:
            return events


def advance_to_next_attempt(clock: Clock, subscription_id: Any) -> Delivery:
    """Move the clock to the moment the subscription's batch in flight is due again."""
    delivery = in_flight(subscription_id)
    assert delivery is not None and delivery.next_attempt_at is not None
    clock.advance_to(delivery.next_attempt_at)
    return delivery
