"""A verification task that finds the feed lock taken waits for it (at most PUBLISH_LOCK_WAIT_SECONDS)
and publishes what it verified in its own transaction: the statements are never stored verified for
the holder to read back and write again, and their events follow the holder's (the feed head is read
again after the wait). If the lock stays taken, the wait runs out quietly and they are stored verified
for the next publisher (PostgreSQL: real concurrent transactions; the wait is seen in
pg_stat_activity, never timed)."""

from __future__ import annotations

import logging
import threading
import uuid

import pytest
from django.db import connections, transaction

from hashes.models import Event, FeedHead, Statement
from hashes.services import publishing, verification
from hashes.services.feed import FEED_HEAD_ID, feed_lock
from hashes.services.submission import statements_submit
from tests.databases import lock_waiters, postgresql_only
from tests.factories import md5

pytestmark = [
    postgresql_only("SQLite runs one writer at a time; waiting for another's lock needs PostgreSQL"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]



class Holder(threading.Thread):
    """Holds the feed lock in a transaction of its own, publishing what was verified before (events
    1..n, so the waiter must read the feed head again once it has the lock), until told to let go or
    (with `until_waited`) until another transaction waits for it. Notes whether it saw one wait."""

    def __init__(self, *, until_waited: bool) -> None:
        super().__init__(daemon=True)
        self.until_waited, self.held, self.release, self.saw_a_waiter = until_waited, threading.Event(), threading.Event(), False
        self.published = 0

    def run(self) -> None:
        try:
            with transaction.atomic():
                head = feed_lock()
                self.published = len(publishing.publish_statements(head, publishing.next_batch(10)).published)
                self.held.set()
                while not self.release.wait(0.02):
                    if lock_waiters():
                        self.saw_a_waiter = True
                        if self.until_waited:
                            break
        finally:
            connections.close_all()


def submitted(alice, count: int) -> list[str]:
    statements = [alice.statement([md5(n)]) for n in range(count)]
    return [a["id"] for a in statements_submit(member=alice.member, statements=statements).accepted]


def test_a_verification_that_finds_the_lock_taken_waits_and_publishes_in_its_own_transaction(
        actor_factory, settings):
    settings.PUBLISH_LOCK_WAIT_SECONDS = 60  # bounded by the holder, which lets go once it sees the wait
    FeedHead.objects.get_or_create(pk=FEED_HEAD_ID)  # an earlier transactional test may have flushed it
    alice, bob = actor_factory("alice"), actor_factory("bob")
    first, *ids = submitted(alice, 4)
    assert verification.statements_verify(ids=[first]) == 1  # verified, for the holder to publish
    holder = Holder(until_waited=True)
    holder.start()
    assert holder.held.wait(10)

    assert verification.statements_verify(ids=ids, publish=True) == 3
    holder.release.set()
    holder.join(10)

    assert holder.saw_a_waiter and holder.published == 1  # it did wait for the holder
    # Published by the verification itself, each row written once after receipt: no publisher ran.
    assert set(Statement.objects.values_list("state", flat=True)) == {"published"}
    events = bob.feed()["events"]
    # The feed head was read again after the wait: the seqs go on after the holder's.
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert [e["hash"]["value"] for e in events] == [md5(n)["value"] for n in range(4)]


def test_if_the_lock_stays_taken_the_statements_are_stored_verified_for_the_next_publisher(
        actor_factory, settings, caplog, monkeypatch):
    settings.PUBLISH_LOCK_WAIT_SECONDS = 2  # runs out: the holder lets go only when told
    FeedHead.objects.get_or_create(pk=FEED_HEAD_ID)
    alice, bob = actor_factory("alice"), actor_factory("bob")
    first, *ids = submitted(alice, 3)
    assert verification.statements_verify(ids=[first]) == 1
    holder = Holder(until_waited=False)
    holder.start()
    assert holder.held.wait(10)

    waits = []
    wait = publishing.feed_lock_within
    monkeypatch.setattr(publishing, "feed_lock_within", lambda seconds: waits.append(wait(seconds)) or waits[-1])
    with caplog.at_level(logging.WARNING):
        assert verification.statements_verify(ids=ids, publish=True) == 2  # the wait ran out: verified alone
    holder.release.set()
    holder.join(10)

    # It waited (the lock was held throughout, so only a wait that ran out ends with no head), quietly.
    assert waits == [None] and holder.published == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert dict(Statement.objects.values_list("id", "state")) == {
        uuid.UUID(first): "published", **{uuid.UUID(i): "verified" for i in ids}}
    assert Event.objects.count() == 1
    assert publishing.publish_verified(batch_size=10).settled == 2
    assert [e["seq"] for e in bob.feed()["events"]] == [1, 2, 3]
