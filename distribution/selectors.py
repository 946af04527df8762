"""Every read of the distribution app, scoped by the asking member (administrators use the admin)."""

from __future__ import annotations

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


def delivery_list(*, subscription: Subscription, limit: int) -> list[Delivery]:
    return list(Delivery.objects.filter(subscription=subscription).order_by("-id").prefetch_related("attempts")[:limit])
