"""What a verification task reads of the feed lock. After publishing its own statements it looks for
waiting work with one read, without the lock, and takes the lock again only when something waits;
taking the lock is one locking read of the head row (the head is looked for, and created, only when
that read finds nothing). Correctness of the look after commit is tests/hashes/test_publisher_handoff.py's."""

from __future__ import annotations

from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from hashes import tasks
from hashes.models import FeedHead, Statement
from hashes.services import publishing, verification
from hashes.services.feed import FEED_HEAD_ID, feed_lock
from tests.factories import md5


def ids_of(body) -> list[str]:
    return [a["id"] for a in body["accepted"]]


def test_a_task_that_published_everything_does_not_take_the_feed_lock_again(alice, monkeypatch):
    calls = []
    monkeypatch.setattr(publishing, "publish_verified", lambda **kw: calls.append(kw) or publishing.PublishRun(0, True))
    ids = ids_of(alice.submit(*[alice.statement([md5(n)]) for n in range(3)]))

    tasks.verify_statements(ids)

    assert set(Statement.objects.values_list("state", flat=True)) == {"published"}
    assert calls == []


def test_a_task_publishes_what_waits_after_it(alice, bob):
    waiting = ids_of(alice.submit(alice.statement([md5(1)])))
    retraction = ids_of(alice.submit(alice.retraction(Statement.objects.get(id=waiting[0]).jti)))
    # The target and its retraction verified together: the retraction waits for its target's
    # publishing, which happens in the task's own transaction; the look after commit finds it.
    tasks.verify_statements(waiting + retraction)

    assert set(Statement.objects.values_list("state", flat=True)) == {"published"}
    assert [e["type"] for e in bob.feed()["events"]] == ["hash.added", "hash.retracted"]


def test_taking_the_feed_lock_is_one_read(db):
    FeedHead.objects.get_or_create(pk=FEED_HEAD_ID)
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        head = feed_lock(wait=False)
    assert head is not None and head.pk == FEED_HEAD_ID
    assert len(queries) == 1, [q["sql"] for q in queries]


def test_the_feed_lock_creates_a_missing_head(db):
    FeedHead.objects.all().delete()
    with transaction.atomic():
        head = feed_lock(wait=False)
        assert head is not None and head.pk == FEED_HEAD_ID and head.last_seq == 0
    assert FeedHead.objects.filter(pk=FEED_HEAD_ID).exists()
