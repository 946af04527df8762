"""Who needs to hear about new events, and the sweep that recovers whatever a lost message, a killed
worker or a broker restart left behind. The database is the source of truth: every decision here is
made from rows, so running any of it twice, or late, only repeats work that is safe to repeat."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet

from consortium.db import commit_without_waiting_for_the_disk
from hashes.models import Event
from hashes.services.feed import feed_head
from members.models import Member

from ..models import Delivery, DispatchMark, Subscription
from ..rendering import Filters, load_seqs, render_all, viewers_for
from . import delivering
from .heads import announce

logger = logging.getLogger(__name__)

# Incident events examined per dispatch; more are left for the next one.
PRIORITY_SCAN = 1000
# Finished deliveries deleted per sweep once older than WEBHOOK_RETENTION_DAYS.
PRUNE_BATCH = 2000


def _not_waiting(now: datetime) -> Q:
    stale = now - timedelta(seconds=settings.WEBHOOK_WAKE_STALE_SECONDS)
    return Q(wake_requested_at__isnull=True) | Q(wake_requested_at__lt=stale)


def wake(ids: list[Any], *, now: datetime, head: int | None = None) -> list[Any]:
    """The subscriptions among these that need a pump queued, marked as queued once this commits:
    those without one queued already (a queued pump that has not started within
    WEBHOOK_WAKE_STALE_SECONDS is taken for lost and queued again), after announcing the feed head
    (`head`, or the current one). A subscription whose row a pump holds right now is skipped, not
    waited for: that pump looks at the announced head again before it stops. The caller queues the
    pumps once the marks are committed; should that fail, the marks go stale and the next dispatch
    queues them again."""
    if head is None:
        announce(feed_head())
    with transaction.atomic():
        chosen = list(Subscription.objects.select_for_update(skip_locked=True, no_key=True).filter(pk__in=ids)
                      .filter(_not_waiting(now)).values_list("pk", flat=True))
        if chosen:
            Subscription.objects.filter(pk__in=chosen).update(wake_requested_at=now)
    return chosen


def behind(head: int, now: datetime) -> QuerySet[Subscription]:
    """Active subscriptions with events after their cursor, except those whose batch in flight is
    being sent or waiting for its next attempt."""
    busy = Delivery.objects.filter(
        subscription=OuterRef("pk"), lane=Delivery.Lane.MAIN, state=Delivery.State.PENDING, next_attempt_at__gt=now)
    return (
        Subscription.objects.filter(state=Subscription.State.ACTIVE, member__status=Member.Status.ACTIVE,
                                    cursor__lt=head)
        .exclude(Exists(busy))
    )


@dataclass
class Dispatched:
    priority: list[int] = field(default_factory=list)  # priority-lane deliveries created, to send
    woken: list[Any] = field(default_factory=list)  # subscriptions to queue a pump for


def dispatch(*, now: datetime) -> Dispatched:
    """Make the priority-lane pushes of new incident events, then wake every subscription that is
    behind. The pushes are made under the dispatcher's lock, so each incident event is pushed once;
    they are sent by `push_deliveries`, which the caller queues with their ids (`priority`), as it
    queues the pumps of the subscriptions woken (`woken`): the dispatcher never waits on a receiver.
    A push whose message is lost is queued again by the sweep."""
    result = Dispatched()
    started = time.monotonic()
    with transaction.atomic():
        # Should the database crash in the fraction of a second before the flush, the dispatch is
        # lost as a whole and the next one pushes the same events again (new webhook-ids; receivers
        # drop repeated event ids), while the main lane, whose claims always wait, delivers them in
        # order regardless. The pushes go out right after this commit: a busy disk must not hold them.
        commit_without_waiting_for_the_disk()
        DispatchMark.objects.get_or_create(pk=1)
        # Dispatchers take turns, so each incident event is pushed once.
        mark = DispatchMark.objects.select_for_update().get(pk=1)
        head = feed_head()
        if head > mark.scanned_seq:
            seqs = list(
                Event.objects.filter(seq__gt=mark.scanned_seq, seq__lte=head, cause__priority=True)
                .order_by("seq").values_list("seq", flat=True)[:PRIORITY_SCAN]
            )
            if seqs:
                result.priority = priority_pushes(seqs, now=now)
            mark.scanned_seq = seqs[-1] if len(seqs) == PRIORITY_SCAN else head
        mark.head = max(mark.head, head)
        mark.save(update_fields=["scanned_seq", "head"])
    if result.priority:
        logger.info("Incident events for %d subscriptions made in %.3f s.", len(result.priority),
                    time.monotonic() - started)
    # Pumps already at work carry on up to the new head (they look again before they stop); the
    # others are woken.
    result.woken = wake(list(behind(head, now).values_list("pk", flat=True)), now=now, head=head)
    return result


def priority_pushes(seqs: list[int], *, now: datetime) -> list[int]:
    """A priority-lane delivery for each subscription that may see some of these incident events and
    has not acknowledged them yet. The cursor does not move: the events come again on the main
    lane. A subscription whose last push is still failing gets no more: they would only pile up
    against a receiver that is down, and its main lane brings the events in their place."""
    failing = Delivery.objects.filter(subscription=OuterRef("pk"), lane=Delivery.Lane.PRIORITY,
                                      state=Delivery.State.PENDING, failures__gt=0)
    subscriptions = Subscription.objects.filter(
        state=Subscription.State.ACTIVE, member__status=Member.Status.ACTIVE, cursor__lt=seqs[-1],
    ).exclude(Exists(failing)).select_related("member")
    incident_events = load_seqs(seqs)
    viewers = viewers_for([subscription.member for subscription in subscriptions])
    chosen = []
    for subscription in subscriptions:
        viewer = viewers[subscription.member_id]
        unacknowledged = [loaded for loaded in incident_events if loaded.event.seq > subscription.cursor]
        filters = Filters.of(subscription)
        events = [r for r in render_all(unacknowledged, viewer) if r is not None and r.passes(filters)]
        if events:
            chosen.append((subscription, events))
    return delivering.new_pushes(chosen, now=now)


@dataclass
class Swept:
    dispatched: Dispatched
    resent: list[int]  # single deliveries due again, to send
    superseded: int
    pruned: int


def sweep(*, now: datetime) -> Swept:
    """Beat's periodic pass: dispatch (catching anything a lost hand-off missed), queue again the
    single deliveries that are due and not queued (retries, lost messages, deliveries a killed
    worker held), retire priority pushes the main lane has overtaken, prune old history. The
    caller queues what the dispatch made and the deliveries due again (`resent`)."""
    dispatched = dispatch(now=now)
    stale = now - timedelta(seconds=settings.WEBHOOK_WAKE_STALE_SECONDS)
    with transaction.atomic():
        due = list(
            Delivery.objects.filter(state=Delivery.State.PENDING, next_attempt_at__lte=now)
            .filter(Q(lane=Delivery.Lane.TEST)
                    | Q(lane=Delivery.Lane.PRIORITY, subscription__state=Subscription.State.ACTIVE))
            .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale))
            .order_by().values_list("pk", flat=True)[:1000]
        )
        if due:
            Delivery.objects.filter(pk__in=due).update(enqueued_at=now)
        overtaken = list(
            Delivery.objects.filter(lane=Delivery.Lane.PRIORITY, state=Delivery.State.PENDING,
                                    last_seq__lte=F("subscription__cursor")).order_by().values_list("pk", flat=True)
        )
        superseded = Delivery.objects.filter(pk__in=overtaken, state=Delivery.State.PENDING).update(
            state=Delivery.State.SUPERSEDED, next_attempt_at=None, finished_at=now)
    cutoff = now - timedelta(days=settings.WEBHOOK_RETENTION_DAYS)
    old = list(
        Delivery.objects.filter(finished_at__lt=cutoff).exclude(state=Delivery.State.PENDING)
        .order_by().values_list("pk", flat=True)[:PRUNE_BATCH]
    )
    pruned = Delivery.objects.filter(pk__in=old).delete()[0] if old else 0
    if due or superseded:
        logger.info("Distribution sweep: %d deliveries queued again, %d priority pushes overtaken.",
                    len(due), superseded)
    return Swept(dispatched, due, superseded, pruned)
