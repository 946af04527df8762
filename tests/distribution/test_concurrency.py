"""Several workers pumping one subscription at once (a queued pump and a re-queued one, or two
workers picking up duplicates after a broker hiccup) still send each batch once, in order, with no
gap: the subscription row is locked while a batch is made, and a batch in flight is claimed."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection
from django.utils import timezone

from distribution import tasks
from distribution.models import Delivery, Subscription
from distribution.services import delivering, dispatching
from tests.factories import md5

from .helpers import subscribe

# Rows are committed, so every such test empties the database when it ends; serialized rollback
# reloads what migrations created (the label taxonomy) when this one starts.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_pumps_racing_for_one_subscription_send_every_batch_once_in_order(
    alice, bob, receiver, settings, pipeline, monkeypatch,
):
    settings.WEBHOOK_BATCH_SIZE = 7
    for name in ("enqueue_dispatch", "enqueue_pumps", "enqueue_push"):
        monkeypatch.setattr(tasks, name, lambda *args: None)  # only the racing pumps below deliver
    making_a_batch = delivering.next_batch

    def slowly(*args, **kwargs):
        time.sleep(0.02)  # widens the window in which two workers could both decide to make a batch
        return making_a_batch(*args, **kwargs)

    monkeypatch.setattr(delivering, "next_batch", slowly)
    subscription = subscribe(bob, receiver, after=0)
    alice.submit(*[alice.statement([md5(n)]) for n in range(60)])
    pipeline()
    dispatching.wake([subscription["id"]], now=timezone.now())
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait()
            for _ in range(5):
                list(delivering.pump([subscription["id"]], budget=float("inf")))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert Subscription.objects.get(pk=subscription["id"]).cursor == 60
    ids = [r.webhook_id for r in receiver.received]
    assert len(ids) == len(set(ids)) == Delivery.objects.count() == 9  # windows of 7 seqs: 8 full, 1 of 4
    assert [e["seq"] for e in receiver.events()] == list(range(1, 61))
