"""A Redis broker that takes connections and never answers (hung, failing over, a black hole in the
network) must not hold the web requests that queue work: gunicorn answers them, the work they stored
waits in the database, and the sweeps queue it once a broker answers again."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from consortium_client.http import ConsortiumClient
from hashes.models import Statement
from media.models import MediaJob
from tests.factories import md5

from .redis_server import PrivateRedis, private_redis  # noqa: F401  a fixture
from .stack import wait_until

pytestmark = pytest.mark.e2e


class SilentBroker:
    """Accepts every connection on 127.0.0.1 and never reads or writes a byte."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.listener.getsockname()[1]}/0"

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:  # closed
                return
            self.held.append(connection)

    def close(self) -> None:
        self.listener.close()
        for connection in self.held:
            connection.close()


@pytest.fixture
def silent_broker() -> Iterator[SilentBroker]:
    broker = SilentBroker()
    try:
        yield broker
    finally:
        broker.close()


def test_requests_that_queue_work_are_answered_while_the_broker_never_answers_and_the_work_runs_once_it_does(
    stack, actor_factory, silent_broker, private_redis: PrivateRedis, tmp_path: Path,
):
    alice = actor_factory("alice")
    image = tmp_path / "red.png"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(image)
    stack.overrides.update({
        "CELERY_BROKER_URL": silent_broker.url, "CELERY_BROKER_SOCKET_TIMEOUT_SECONDS": "0.5",
        "CACHE_URL": private_redis.url,  # the request counts: not what this test is about
        "MEDIA_JOB_REQUEUE_SECONDS": "1", "MEDIA_JOB_SWEEP_SECONDS": "1",
    })
    stack.start("web")
    stack.wait_for_web()

    # Each request publishes a task to the silent broker after its transaction commits. Without
    # socket timeouts the publish never returns: gunicorn kills the worker at GUNICORN_TIMEOUT and
    # the client sees the connection dropped, or its own timeout, never an answer.
    api = ConsortiumClient(stack.base_url, alice.token, timeout=120)
    submitted = api.submit([alice.statement([md5(n)]) for n in range(3)])
    job = api.hash_job_start(image)

    assert not submitted["rejected"] and len(submitted["accepted"]) == 3
    assert {entry["state"] for entry in submitted["accepted"]} == {"received"}
    assert job["state"] == "queued"
    assert set(Statement.objects.values_list("state", flat=True)) == {"received"}  # stored, not lost
    assert silent_broker.held, "the web process never reached the silent broker"

    # A broker that answers: the sweeps find the stored work in the database and queue it.
    stack.stop()
    stack.overrides["CELERY_BROKER_URL"] = private_redis.url
    stack.start("worker", "beat", "media")
    wait_until(lambda: set(Statement.objects.values_list("state", flat=True)) == {"published"}, timeout=120,
               what="the sweep to queue the statements again")
    wait_until(lambda: MediaJob.objects.get(pk=job["id"]).state == MediaJob.State.DONE, timeout=120,
               what="the media sweep to queue the job again")
