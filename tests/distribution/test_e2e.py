"""Proof with real processes that nothing is lost: statements submitted over HTTP to gunicorn, verified
and published by the pipeline worker, pushed by the deliver worker to a receiver on 127.0.0.1 that
verifies every delivery (v1 and v1a). The deliver worker is SIGKILLed in the middle of a delivery,
and (with Redis) the broker, a redis-server of the test's own, is restarted during a run: deliveries
still complete, nothing is skipped."""

from __future__ import annotations

import time

import pytest
from django.conf import settings

from consortium_client.http import ConsortiumClient
from distribution.models import Delivery, Subscription
from hashes.models import Statement
from tests.e2e.redis_server import private_redis  # noqa: F401  a fixture
from tests.e2e.stack import wait_until
from tests.factories import md5

pytestmark = pytest.mark.e2e


def subscribe_over_http(stack, actor, receiver) -> dict:
    created = ConsortiumClient(stack.base_url, actor.token).request(
        "POST", "/api/v1/subscriptions/", {"url": receiver.url, "after": 0})
    receiver.secrets.append(created["secret"])
    return created


def submit(stack, actor, numbers) -> None:
    api = ConsortiumClient(stack.base_url, actor.token, timeout=60)
    numbers = list(numbers)
    for start in range(0, len(numbers), 100):
        answer = api.submit([actor.statement([md5(n)]) for n in numbers[start:start + 100]])
        assert not answer["rejected"], answer["rejected"][:3]


def assert_complete(receiver, total: int) -> None:
    assert [event["seq"] for event in receiver.events()] == list(range(1, total + 1))
    assert receiver.received and all(r.v1 and r.v1a for r in receiver.received)


def test_a_deliver_worker_killed_mid_delivery_loses_nothing_and_resends_the_same_batch(
    live_stack, live_receiver, actor_factory,
):
    alice, bob = actor_factory("alice"), actor_factory("bob")
    live_stack.start("web", "worker", "dispatch", "deliver", "beat")
    live_stack.wait_for_web()
    receiver = live_receiver()
    subscription = subscribe_over_http(live_stack, bob, receiver)
    receiver.behaviour.hang = True  # the first delivery stays in the deliver worker's hands

    submit(live_stack, alice, range(300))
    assert receiver.wait_for(lambda received: len(received) >= 1, timeout=60), "no delivery arrived"
    held = receiver.received[0]
    in_hand = Delivery.objects.get(webhook_id=held.webhook_id)
    assert (in_hand.state, in_hand.attempt_count) == ("pending", 1)
    live_stack.kill("deliver")
    receiver.behaviour.hang = False
    receiver.release.set()

    live_stack.start("deliver")
    wait_until(lambda: Subscription.objects.get(pk=subscription["id"]).cursor == 300, timeout=120,
               what="every event acknowledged")

    assert_complete(receiver, 300)
    assert receiver.batches()[0].webhook_id == held.webhook_id  # the batch in hand, again, under its id
    assert receiver.batches()[0].raw == held.raw
    assert not Delivery.objects.filter(lane="main").exclude(state="delivered").exists()


@pytest.mark.skipif(not settings.CELERY_BROKER_URL.startswith("redis://"),
                    reason="the broker is not Redis in this run (embedded mode uses the filesystem broker)")
def test_a_redis_restart_during_a_run_delays_deliveries_but_loses_none(
    live_stack, live_receiver, actor_factory, private_redis,
):
    live_stack.overrides = {**live_stack.overrides, "CELERY_BROKER_URL": private_redis.url,
                            "CACHE_URL": private_redis.url}
    alice, bob = actor_factory("alice"), actor_factory("bob")
    live_stack.start("web", "worker", "dispatch", "deliver", "beat")
    live_stack.wait_for_web()
    receiver = live_receiver()
    subscription = subscribe_over_http(live_stack, bob, receiver)

    submit(live_stack, alice, range(200))
    assert receiver.wait_for(lambda received: len(received) >= 1, timeout=60), "no delivery arrived"
    private_before = private_redis.run_id()
    private_redis.restart()
    submit(live_stack, alice, range(200, 400))

    wait_until(lambda: Subscription.objects.get(pk=subscription["id"]).cursor == 400, timeout=120,
               what="every event acknowledged")
    assert_complete(receiver, 400)
    # The processes reached the restarted server again: it was their broker, not the machine's Redis.
    assert private_redis.run_id() != private_before
    assert private_redis.client().info("clients")["connected_clients"] > 1


def test_the_standard_entry_points_alone_run_the_whole_pipeline(live_stack, live_receiver, actor_factory):
    """`gunicorn consortium.wsgi`, `celery -A consortium worker` and `celery -A consortium beat`, with
    no --queues or config argument: the one worker consumes every queue, so statements are verified,
    published and delivered (a worker that took only `default` would leave them `received`)."""
    alice, bob = actor_factory("alice"), actor_factory("bob")
    live_stack.start_plain("web", "worker", "beat")
    live_stack.wait_for_web()
    receiver = live_receiver()
    subscription = subscribe_over_http(live_stack, bob, receiver)

    submit(live_stack, alice, range(20))
    wait_until(lambda: Subscription.objects.get(pk=subscription["id"]).cursor == 20, timeout=90,
               what="every event delivered")

    assert_complete(receiver, 20)
    assert set(Statement.objects.values_list("state", flat=True)) == {"published"}


def test_workers_idle_many_times_the_broker_socket_timeout_still_take_their_tasks(
    live_stack, live_receiver, actor_factory, private_redis,
):
    """The socket timeout that bounds publishing (CELERY_BROKER_SOCKET_TIMEOUT_SECONDS) never cuts a
    worker's wait for tasks: kombu's event loop reads a BRPOP's reply only once Redis has sent it.
    Here it is below BRPOP's own 1 s, and the prefork pipeline worker and the thread-pool webhook
    workers sit idle through a hundred timeouts and redis-py's 25 s health checks, then take every
    task without losing their connection once."""
    live_stack.overrides.update({"CELERY_BROKER_URL": private_redis.url, "CACHE_URL": private_redis.url,
                                 "CELERY_BROKER_SOCKET_TIMEOUT_SECONDS": "0.3"})
    alice, bob = actor_factory("alice"), actor_factory("bob")
    workers = ("worker", "dispatch", "deliver")
    live_stack.start(*workers)  # no beat and no web yet: not one task arrives while they wait
    logs = {name: live_stack.workdir / f"{name}.log" for name in workers}
    wait_until(lambda: all(" ready." in path.read_text(errors="replace") for path in logs.values()), timeout=60,
               what="the workers to be ready")
    time.sleep(30)

    live_stack.start("web", "beat")
    live_stack.wait_for_web()
    receiver = live_receiver()
    subscription = subscribe_over_http(live_stack, bob, receiver)
    submit(live_stack, alice, range(20))
    wait_until(lambda: Subscription.objects.get(pk=subscription["id"]).cursor == 20, timeout=90,
               what="every event delivered")

    assert_complete(receiver, 20)
    for name, path in logs.items():
        log = path.read_text(errors="replace")
        assert "Timeout" not in log and "Connection to broker lost" not in log, f"{name}:\n{log[-4000:]}"
