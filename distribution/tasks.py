"""Thin Celery wrappers. Each task re-reads its rows and is safe to run twice or late; the sweep
finds anything a lost message left behind. Queues (deploy/Procfile): `deliver_priority` (dispatch,
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
from django.utils import timezone

from .services import delivering, dispatching

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True, acks_late=False)
def dispatch() -> None:
    enqueue_push(dispatching.dispatch(now=timezone.now()).priority)


@shared_task(ignore_result=True, acks_late=False)
def push(delivery_ids: list[int]) -> None:
    delivering.push_deliveries(delivery_ids)


@shared_task(ignore_result=True, acks_late=False)
def pump(subscription_ids: list[str] | str) -> None:
    def wake(more: list) -> None:
        dispatching.wake(more, now=timezone.now())

    more = delivering.pump_group([subscription_ids] if isinstance(subscription_ids, str) else subscription_ids,
                                 hand_off=wake)
    if more:
        wake(more)


@shared_task(ignore_result=True, acks_late=False)
def send_delivery(delivery_id: int) -> None:
    delivering.send_single(delivery_id)


@shared_task(ignore_result=True, acks_late=False)
def sweep() -> None:
    enqueue_push(dispatching.sweep(now=timezone.now()).dispatched.priority)


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


def enqueue_push(delivery_ids: list[int]) -> None:
    """Incident pushes go out together in one task, on a thread of their own."""
    if not delivery_ids:
        return
    try:
        push.apply_async(args=[delivery_ids], expires=_expires())
    except Exception:
        logger.exception("Could not queue incident pushes; the sweep will send them.")


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


def enqueue_sends(delivery_ids: Iterable[int]) -> None:
    try:
        for delivery_id in delivery_ids:
            send_delivery.apply_async(args=[delivery_id], expires=_expires())
    except Exception:
        logger.exception("Could not queue webhook deliveries; the sweep will retry.")
