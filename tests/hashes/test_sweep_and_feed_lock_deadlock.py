"""A verification waiting for the feed lock holds the statements it claimed. The sweep must not wait
for those rows (while holding others the feed holder goes on to write: a cycle), and if a cycle
closes all the same, the verification loses only the wait, not its batch (PostgreSQL: real
concurrent transactions; the waits are read from pg_stat_activity, never timed)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from hashes.models import FeedHead, Statement
from hashes.services import pipeline
from hashes.services.feed import FEED_HEAD_ID, feed_lock, feed_lock_within
from hashes.services.submission import statements_submit
from tests.databases import lock_waiters, postgresql_only
from tests.factories import md5

pytestmark = [
    postgresql_only("row locks held by concurrent transactions need PostgreSQL"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]



def submitted(alice, count: int) -> list[str]:
    statements = [alice.statement([md5(n)]) for n in range(count)]
    return [a["id"] for a in statements_submit(member=alice.member, statements=statements).accepted]


class Claimer(threading.Thread):
    """A verification's claim: holds a statement's row locked until told to let go."""

    def __init__(self, statement_id: str) -> None:
        super().__init__(daemon=True)
        self.statement_id, self.held, self.release = statement_id, threading.Event(), threading.Event()

    def run(self) -> None:
        try:
            with transaction.atomic():
                list(Statement.objects.select_for_update(skip_locked=True, of=("self",))
                     .filter(id=self.statement_id, state=Statement.State.RECEIVED))
                self.held.set()
                self.release.wait(60)
        finally:
            connections.close_all()


def test_the_sweep_skips_statements_being_verified_instead_of_waiting_for_them(actor_factory):
    alice = actor_factory("alice")
    free, claimed = submitted(alice, 2)
    Statement.objects.update(queued_at=timezone.now() - timedelta(hours=1))
    claimer = Claimer(claimed)
    claimer.start()
    assert claimer.held.wait(10)
    try:
        with connection.cursor() as cursor:  # old code waited here for the claim: fail, not hang
            cursor.execute("SET lock_timeout = '20s'")
        found = pipeline.sweep(stale_after_seconds=60)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
        claimer.release.set()
        claimer.join(10)
    assert [str(i) for i in found.stale] == [free]
    assert Statement.objects.get(id=claimed).queued_at < timezone.now() - timedelta(minutes=30)


class FeedHolder(threading.Thread):
    """Holds the feed lock; once another transaction waits for it, writes `statement_id` (which that
    transaction holds): a cycle that only the waiter's deadlock check sees (the holder's is an hour)."""

    def __init__(self, statement_id: str) -> None:
        super().__init__(daemon=True)
        self.statement_id, self.held, self.wrote, self.error = statement_id, threading.Event(), False, None

    def run(self) -> None:
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL deadlock_timeout = '1h'")
                feed_lock()
                self.held.set()
                for _ in range(3000):
                    if lock_waiters():
                        break
                    threading.Event().wait(0.01)
                Statement.objects.filter(id=self.statement_id).update(queued_at=timezone.now())
                self.wrote = True
        except Exception as exc:  # noqa: BLE001 - reported to the test
            self.error = exc
        finally:
            connections.close_all()


def test_a_deadlock_while_waiting_for_the_feed_lock_loses_the_wait_not_the_transaction(actor_factory):
    FeedHead.objects.get_or_create(pk=FEED_HEAD_ID)
    alice = actor_factory("alice")
    (mine,) = submitted(alice, 1)
    holder = FeedHolder(mine)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL deadlock_timeout = '100ms'")
        list(Statement.objects.select_for_update().filter(id=mine))
        holder.start()
        assert holder.held.wait(10)
        assert feed_lock_within(60) is None  # chosen to break the cycle: old code raised
        # The transaction goes on: what it holds it can still write.
        assert Statement.objects.filter(id=mine).update(state=Statement.State.VERIFIED) == 1
    holder.join(20)
    assert holder.error is None and holder.wrote
    assert Statement.objects.get(id=mine).state == Statement.State.VERIFIED
