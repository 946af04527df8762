"""The publisher never waits for the feed lock. The race that design must survive: a publisher
holding the lock finds nothing to publish and, before it commits, another worker verifies a
statement, finds the lock taken and leaves. The holder must look again after releasing the lock
(PostgreSQL: real concurrent transactions)."""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from hashes.models import FeedHead, Statement
from hashes.services import publishing, verification
from hashes.services.feed import FEED_HEAD_ID
from hashes.services.submission import statements_submit
from hashes.tasks import verify_statements
from tests.databases import postgresql_only
from tests.factories import md5

# Serialized rollback: every transactional test restores what migrations made (content types,
# permissions, the taxonomy) with the same ids, so the order the suite runs in cannot matter.
pytestmark = [
    postgresql_only("SQLite runs one writer at a time; the hand-off needs PostgreSQL's concurrent writers"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


# publish: the verification tries to publish in its own transaction, waits for the lock as long as
# PUBLISH_LOCK_WAIT_SECONDS allows, and leaves.
@pytest.mark.parametrize("publish", [False, True], ids=["verified-alone", "publish-at-once"])
def test_work_verified_while_an_idle_publisher_holds_the_lock_is_not_left_behind(actor_factory, monkeypatch,
                                                                                 settings, publish):
    settings.PUBLISH_LOCK_WAIT_SECONDS = 0.2
    monkeypatch.setattr(verify_statements, "apply_async", lambda *a, **k: None)  # the broker edge
    # A migration creates the feed head; an earlier transactional test may have flushed it.
    FeedHead.objects.get_or_create(pk=FEED_HEAD_ID)
    alice = actor_factory("alice")

    found_nothing, resume = threading.Event(), threading.Event()
    real_next_batch = publishing.next_batch

    def next_batch_then_linger(limit):
        batch = real_next_batch(limit)
        if not batch and not found_nothing.is_set():
            found_nothing.set()  # the lock is held, the batch was empty, the commit has not happened
            resume.wait(10)
        return batch

    monkeypatch.setattr(publishing, "next_batch", next_batch_then_linger)
    holder_runs = []

    def holder():
        try:
            holder_runs.append(publishing.publish_verified(batch_size=10))
        finally:
            connections.close_all()

    thread = threading.Thread(target=holder)
    thread.start()
    assert found_nothing.wait(10)
    accepted = statements_submit(member=alice.member, statements=[alice.statement([md5(1)])]).accepted
    verification.statements_verify(ids=[a["id"] for a in accepted], publish=publish)
    mine = publishing.publish_verified(batch_size=10)  # the lock is taken: returns at once, publishes nothing
    resume.set()
    thread.join(10)

    assert mine.settled == 0
    assert holder_runs[0].settled == 1  # the holder looked again and published it
    assert Statement.objects.get().state == "published"
