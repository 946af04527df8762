"""Every read of the distribution app, scoped by the asking member (administrators use the admin)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Prefetch, QuerySet

from consortium.api.errors import NotFound
from members.models import Member

from .models import Delivery, Subscription


def _with_in_flight(subscriptions: QuerySet[Subscription]) -> QuerySet[Subscription]:
    pending = Delivery.objects.filter(lane=Delivery.Lane.MAIN, state=Delivery.State.PENDING)
    return subscriptions.select_related("member").prefetch_related(
        Prefetch("deliveries", queryset=pending, to_attr="in_flight_deliveries"))


def in_flight(subscription: Subscription) -> Delivery | None:
    """The main-lane batch waiting for an acknowledgement, if any."""
    prefetched = getattr(subscription, "in_flight_deliveries", None)
    if prefetched is not None:
        return prefetched[0] if prefetched else None
    return Delivery.objects.filter(
        subscription=subscription, lane=Delivery.Lane.MAIN, state=Delivery.State.PENDING).first()


def subscription_list(*, member: Member) -> QuerySet[Subscription]:
    return _with_in_flight(Subscription.objects.filter(member=member).order_by("created_at", "pk"))


def subscription_get(*, member: Member, subscription_id: Any) -> Subscription:
    """Another member's subscription is answered exactly like one that does not exist."""
    subscription = _with_in_flight(Subscription.objects.filter(member=member, pk=subscription_id)).first()
    if subscription is None:
        raise NotFound("No subscription of yours has this id.")
    return subscription


@dataclass(frozen=True)
class DeliveryPage:
    deliveries: list[Delivery]
    next_before: int | None  # pass as `before` for the older ones; None: there are none


def delivery_page(*, subscription: Subscription, limit: int, before: int | None = None) -> DeliveryPage:
    """The subscription's deliveries newest first, `limit` at a time, older than delivery `before` if
    given. Ids only grow, so pages neither shift nor repeat while new deliveries are made."""
    deliveries = Delivery.objects.filter(subscription=subscription)
    if before is not None:
        deliveries = deliveries.filter(pk__lt=before)
    rows = list(deliveries.order_by("-id").prefetch_related("attempts")[:limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return DeliveryPage(rows, rows[-1].pk if more else None)
