"""Thin Celery wrappers: each task calls a service and queues what the service says is to do next.
Each task re-reads its rows and is safe to run twice or late; the sweep finds anything a lost
message left behind. Queues (consortium/settings.py, deploy/Procfile): `deliver_priority` (dispatch,
incident pushes, pings, the sweep) is served by the `dispatch` worker, `deliver` (main-lane pumps)
by the `deliver` worker, so an incident never waits behind a backlog.

Messages are acknowledged when a task starts (acks_late off): the database, not the broker, says
what is left to do, so a message lost with a killed worker costs nothing the sweep does not redo
within seconds, and a worker holds no unacknowledged messages for Redis to lose."""

from __future__ import annotations

import logging
from typing import Any, Iterable

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import Subscription
from .services import delivering, dispatching

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True, acks_late=False)
def dispatch() -> None:
    enqueue_dispatched(dispatching.dispatch(now=timezone.now()))


@shared_task(ignore_result=True, acks_late=False)
def push(delivery_ids: list[int]) -> None:
    delivering.push_deliveries(delivery_ids)


@shared_task(ignore_result=True, acks_late=False)
def pump(subscription_ids: list[str]) -> None:
    for more in delivering.pump(subscription_ids, linger=delivering.LINGER_SECONDS):
        enqueue_pumps(dispatching.wake(more, now=timezone.now()))


@shared_task(ignore_result=True, acks_late=False)
def sweep() -> None:
    swept = dispatching.sweep(now=timezone.now())
    enqueue_dispatched(swept.dispatched)
    enqueue_push(swept.resent)


def events_published_received(sender: Any = None, **kwargs: Any) -> None:
    """hashes' `events_published`: new events are committed, so the dispatcher has work. Events
    published while no webhook worker runs, or whose message is lost, are found by the sweep."""
    enqueue_dispatch()


# Best effort, like the pipeline's enqueueing: the rows are written, so if the broker is unreachable
# the sweep queues the work again later. Messages expire when the sweep would re-queue the work
# anyway, so none pile up while no webhook worker runs.

def _expires() -> int:
    return settings.WEBHOOK_WAKE_STALE_SECONDS


def enqueue_dispatch() -> None:
    try:
        dispatch.apply_async(expires=_expires())
    except Exception:
        logger.exception("Could not queue a distribution dispatch; the sweep will do it.")


def dispatch_if_active(subscription: Subscription) -> None:
    """After a subscription was created, changed, resumed or replayed: once that commits, have the
    dispatcher wake every subscription that is behind, so that subscriptions resumed together (after
    an outage, say) share pumps, and with them their rendered batches and bulk writes."""
    if subscription.state == Subscription.State.ACTIVE:
        transaction.on_commit(enqueue_dispatch)


def enqueue_dispatched(dispatched: dispatching.Dispatched) -> None:
    enqueue_push(dispatched.priority)
    enqueue_pumps(dispatched.woken)


def enqueue_push(delivery_ids: list[int]) -> None:
    """Priority pushes and pings go out side by side, PUSH_THREADS to a task (the incident pushes of
    one dispatch in as few tasks as that allows)."""
    size = delivering.PUSH_THREADS
    try:
        for start in range(0, len(delivery_ids), size):
            push.apply_async(args=[delivery_ids[start:start + size]], expires=_expires())
    except Exception:
        logger.exception("Could not queue incident pushes or pings; the sweep will send them.")


def enqueue_pumps(subscription_ids: Iterable[Any]) -> None:
    """One pump for every WEBHOOK_PUMP_GROUP_SIZE subscriptions: it sends to all of them side by
    side and records their outcomes together."""
    ids = [str(subscription_id) for subscription_id in subscription_ids]
    size = settings.WEBHOOK_PUMP_GROUP_SIZE
    try:
        for start in range(0, len(ids), size):
            pump.apply_async(args=[ids[start:start + size]], expires=_expires())
    except Exception:
        logger.exception("Could not queue webhook pumps; the sweep will retry.")
