"""How distribution learns that there is something to send: hashes sends `events_published` once the
transaction that appended events has committed, and distribution queues a dispatch for it. Celery
runs eagerly in tests, so a queued dispatch runs at once, with the pumps it wakes."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction

from distribution import tasks
from distribution.services import delivering
from distribution.services.heads import announce
from hashes import tasks as hashes_tasks
from hashes.services.feed import events_published, feed_head
from tests.factories import md5

from .helpers import subscribe

# The hand-off happens on commit, so these tests commit for real; serialized rollback reloads what
# migrations created (the label taxonomy) when each starts.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


class RolledBack(Exception):
    pass


@pytest.fixture(autouse=True)
def pipeline_by_hand(monkeypatch):
    """Submitting queues no verification task here: `pipeline()` alone, outside Celery, publishes."""
    monkeypatch.setattr(hashes_tasks, "enqueue_verification", lambda *args, **kwargs: None)


@pytest.fixture
def published() -> list[int]:
    """The feed heads announced by `events_published`, in order."""
    heads: list[int] = []

    def record(sender: Any = None, *, head: int, **kwargs: Any) -> None:
        heads.append(head)

    events_published.connect(record, weak=False, dispatch_uid="test_handoff.record")
    yield heads
    events_published.disconnect(dispatch_uid="test_handoff.record")


def test_draining_the_pipeline_outside_celery_hands_the_events_to_distribution(alice, bob, receiver, pipeline):
    subscribe(bob, receiver, after=0)
    alice.submit(*[alice.statement([md5(n)]) for n in range(3)])

    pipeline()  # no Celery task runs the pipeline here: only the commit can tell distribution

    assert [event["seq"] for event in receiver.events()] == [1, 2, 3]


def test_committed_events_queue_a_dispatch_with_the_new_head(alice, pipeline, published, monkeypatch):
    dispatches: list[None] = []
    monkeypatch.setattr(tasks, "enqueue_dispatch", lambda: dispatches.append(None))
    alice.submit(*[alice.statement([md5(n)]) for n in range(3)])

    pipeline()

    assert published == [3] and len(dispatches) == 1


def test_events_of_a_rolled_back_transaction_queue_nothing(alice, pipeline, published, monkeypatch):
    dispatches: list[None] = []
    monkeypatch.setattr(tasks, "enqueue_dispatch", lambda: dispatches.append(None))
    alice.submit(*[alice.statement([md5(n)]) for n in range(3)])

    with pytest.raises(RolledBack), transaction.atomic():
        pipeline()  # the events are appended, then thrown away with the transaction
        raise RolledBack

    assert published == [] and dispatches == []
    pipeline()  # published again, for real this time
    assert published == [3] and len(dispatches) == 1


def test_a_pump_that_lingers_sends_what_is_published_meanwhile_without_a_dispatcher(
    alice, bob, receiver, pipeline, monkeypatch,
):
    """A pump task whose subscriptions are caught up waits a moment (LINGER_SECONDS) and follows the
    feed head itself: events committed meanwhile go out without a dispatcher's wake and a new task."""
    monkeypatch.setattr(tasks, "enqueue_dispatch", lambda: None)  # no dispatcher: only the pump sends
    subscription = subscribe(bob, receiver, after=0)
    alice.submit(alice.statement([md5(1)]))
    pipeline()
    announce(feed_head())
    alice.submit(alice.statement([md5(2)]))
    heads: list[int] = []

    def head_published_meanwhile() -> int:
        if not heads:
            pipeline()  # committed once the pump, caught up with seq 1, looks at the head
        heads.append(feed_head())
        return heads[-1]

    monkeypatch.setattr(delivering, "feed_head", head_published_meanwhile)
    assert list(delivering.pump([subscription["id"]], budget=30, linger=2)) == []

    assert [event["seq"] for event in receiver.events("main")] == [1, 2]
