"""The ordered log. Every event is appended here, under one lock.

Why a lock and not a database sequence: sequence values are handed out at insert time but become
visible at commit time, so under concurrency seq 11 can be visible while seq 10 is not yet; a
reader that moved its cursor to 11 would never see 10. Appending under a lock on the single
FeedHead row, held until commit, makes seqs become visible strictly in order. Publishing is
batched, so the lock is taken a few times a second, not once per statement.

Other apps learn of new events from `events_published`, sent once the transaction that appended
them has committed (never for one that rolled back), with the new feed head."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import OperationalError, transaction
from django.dispatch import Signal
from django.utils import timezone

from consortium.db import insert_rows

from ..models import Event, FeedHead

FEED_HEAD_ID = 1

# Sent with `head` (the last seq committed), after the commit, by whichever process appended.
events_published = Signal()


def feed_head() -> int:
    """The last committed seq. FeedHead is written in the transaction that appends the events, so
    every event up to this value is committed and visible."""
    return FeedHead.objects.filter(pk=FEED_HEAD_ID).values_list("last_seq", flat=True).first() or 0


def feed_lock(*, wait: bool = True) -> FeedHead | None:
    """Take the feed lock for the rest of the current transaction; with wait=False, answer None at
    once if another transaction holds it."""
    assert transaction.get_connection().in_atomic_block, "the feed lock only means something inside a transaction"
    locked = FeedHead.objects.select_for_update(skip_locked=not wait).filter(pk=FEED_HEAD_ID)
    head = locked.first()
    # None: another transaction holds it, or there is no head row yet (a migration creates it; a
    # test's flush removes it). Only then is it looked for, and created if missing.
    if head is None and not FeedHead.objects.filter(pk=FEED_HEAD_ID).exists():
        FeedHead.objects.get_or_create(pk=FEED_HEAD_ID)
        head = locked.first()
    return head


# PostgreSQL's lock_not_available (lock_timeout ran out) and deadlock_detected (the wait closed a
# cycle of waits and PostgreSQL chose this transaction to break it): either way the lock is not had.
LOCK_NOT_AVAILABLE = "55P03"
DEADLOCK_DETECTED = "40P01"


def feed_lock_within(seconds: float) -> FeedHead | None:
    """Take the feed lock for the rest of the current transaction, waiting at most `seconds` for
    the transaction that holds it (0: not at all); None if it is held still. The wait is bounded by
    PostgreSQL's lock_timeout inside a savepoint, so running out, or being chosen to break a
    deadlock, costs only the savepoint: the caller's transaction goes on. Elsewhere (SQLite: one writer at a time) nobody else holds it."""
    head = feed_lock(wait=False)
    connection = transaction.get_connection()
    if head is not None or seconds <= 0 or connection.vendor != "postgresql":
        return head
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('lock_timeout'), set_config('lock_timeout', %s, true)",
                           [f"{max(1, round(seconds * 1000))}ms"])
            previous = cursor.fetchone()[0]
            head = FeedHead.objects.select_for_update().filter(pk=FEED_HEAD_ID).first()
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])
    except OperationalError as exc:
        if getattr(exc.__cause__, "pgcode", None) not in (LOCK_NOT_AVAILABLE, DEADLOCK_DETECTED):
            raise
        return None
    return head


def events_number(head: FeedHead, events: list[dict[str, Any]]) -> None:
    """Give events (dicts of Event fields without seq and event_id) their seq, event_id and final
    `occurred_at`, in the order given, before `events_append` writes them: a publisher that records
    which event began what (a corroboration's life) learns it here. Nothing may be appended between.

    `occurred_at` never goes back along seq: an event stamped earlier than the one before it (the
    clocks of two publishing hosts differ by a few milliseconds) takes that one's time, so readers
    that key on time (TAXII's `date_added`, exchanges' checkpoints) can rely on its order."""
    if not events or "seq" in events[0]:
        return
    previous = Event.objects.filter(seq=head.last_seq).values_list("occurred_at", flat=True).first()
    for event in events:
        occurred_at = event.setdefault("occurred_at", timezone.now())
        if previous is not None and occurred_at < previous:
            event["occurred_at"] = previous
        previous = event["occurred_at"]
        head.last_seq += 1
        event["seq"], event["event_id"] = head.last_seq, uuid.uuid4()


def events_append(head: FeedHead, events: list[dict[str, Any]]) -> None:
    """Append events (dicts of Event fields, numbered by `events_number` or not yet) in the order given."""
    events_number(head, events)
    insert_rows(Event, events)
    FeedHead.objects.filter(pk=head.pk).update(last_seq=head.last_seq)
    last_seq = head.last_seq
    transaction.on_commit(lambda: events_published.send(sender=Event, head=last_seq), robust=True)
