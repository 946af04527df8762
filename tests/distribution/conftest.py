"""Fixtures for distribution tests: a verifying receiver on 127.0.0.1 and a clock the test moves."""

from __future__ import annotations

import urllib.request
from typing import Callable, Iterator

import pytest
from django.conf import settings as django_settings
from kombu import Connection

from consortium.server_keys import server_jwks
from consortium_client.webhooks import load_jwks
from distribution import rendering

from tests.e2e.stack import Stack

from .helpers import Clock
from .receiver import Receiver


@pytest.fixture(autouse=True)
def webhook_settings(settings):
    """Receivers live on 127.0.0.1 over http, as in embedded mode, whichever database the suite runs on."""
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    settings.WEBHOOK_REQUIRE_HTTPS = False
    settings.WEBHOOK_TIMEOUT_SECONDS = 2.0
    settings.WEBHOOK_CONNECT_TIMEOUT_SECONDS = 1.0
    rendering.clear_caches()
    return settings


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def receiver(db) -> Iterator[Receiver]:
    live = Receiver(public_keys=load_jwks(server_jwks())).start()
    try:
        yield live
    finally:
        live.close()


@pytest.fixture
def receiver_factory(db) -> Iterator[Callable[[], Receiver]]:
    started: list[Receiver] = []

    def make() -> Receiver:
        started.append(Receiver(public_keys=load_jwks(server_jwks())).start())
        return started[-1]

    yield make
    for live in started:
        live.close()


# Deliver-worker settings for end-to-end runs: receivers on 127.0.0.1 over http, and short enough
# timeouts and claims that recovering a killed worker's delivery takes seconds, not minutes.
E2E_SETTINGS = {
    "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
    "WEBHOOK_REQUIRE_HTTPS": "false",
    "WEBHOOK_TIMEOUT_SECONDS": "5",
    "WEBHOOK_CLAIM_SECONDS": "6",
    "WEBHOOK_SWEEP_INTERVAL_SECONDS": "0.5",
    "WEBHOOK_WAKE_STALE_SECONDS": "2",
    "WEBHOOK_BATCH_SIZE": "50",
}
DELIVERY_QUEUES = ("deliver_priority", "deliver")


@pytest.fixture
def live_stack(tmp_path, transactional_db, django_db_serialized_rollback) -> Iterator[Stack]:
    """gunicorn, the pipeline worker, the webhook workers and beat from deploy/Procfile, on the test
    database. Rows are committed, so every such test empties the database when it ends; serialized
    rollback reloads what migrations created (the label taxonomy) when this one starts."""
    (tmp_path / "var").mkdir()
    live = Stack(workdir=tmp_path, overrides=dict(E2E_SETTINGS))  # this stack's own: a test may add to it
    live.purge_broker()
    if not django_settings.CELERY_BROKER_URL.startswith("filesystem://"):
        with Connection(django_settings.CELERY_BROKER_URL) as connection:
            for queue in DELIVERY_QUEUES:
                try:
                    connection.default_channel.queue_purge(queue)
                except Exception:  # never declared: nothing to purge
                    pass
    try:
        yield live
    finally:
        live.stop()
        for name in ("web", "worker", "dispatch", "deliver", "beat"):
            log = live.logs(name)
            if log:
                print(f"----- {name} log (tail) -----\n{log}")


@pytest.fixture
def live_receiver(live_stack) -> Iterator[Callable[[], Receiver]]:
    """A receiver that trusts the running server's published keys (call it once the web is up)."""
    started: list[Receiver] = []

    def make() -> Receiver:
        with urllib.request.urlopen(f"{live_stack.base_url}/.well-known/jwks.json", timeout=10) as answer:
            started.append(Receiver(public_keys=load_jwks(answer.read())).start())
        return started[-1]

    yield make
    for live in started:
        live.close()
