"""/healthz and /readyz: liveness without the database, readiness naming what is not ready, and
never hanging on a broker that does not answer."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from consortium.celery_app import app as celery_app
from hashes.matching import indexes
from hashes.models import Statement


def test_healthz_answers_without_the_database_and_whatever_the_host():
    """No `db` fixture: pytest-django fails any test that touches the database. Probes address a
    pod by its IP, which is not among DJANGO_ALLOWED_HOSTS."""
    response = Client(HTTP_HOST="10.1.2.3:8000").get("/healthz")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert response["Cache-Control"] == "no-store"


def test_healthz_refuses_other_methods_in_the_error_shape():
    response = Client().post("/healthz")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.fixture
def built_index(committed_db) -> None:
    indexes.fresh()


def readyz(**headers: str):
    return Client(**headers).get("/readyz")


def test_readyz_is_ready_when_everything_answers(built_index):
    response = readyz(HTTP_HOST="10.1.2.3:8000")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ready" and body["failing"] == []
    assert set(body["checks"]) == {"database", "broker", "index", "pipeline_lag_seconds"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["pipeline_lag_seconds"]["value"] == 0


def test_readyz_names_the_index_while_it_is_being_built(committed_db):
    response = readyz()

    assert response.status_code == 503
    assert response.json()["failing"] == ["index"]
    assert response.json()["checks"]["index"] == {"ok": False, "error": "index_building"}


def test_readyz_names_the_pipeline_when_a_statement_waits_too_long(built_index, alice, settings):
    settings.READY_MAX_PIPELINE_LAG_SECONDS = 60
    Statement.objects.create(member=alice.member, jti="stuck", kind="hash", raw="x", digest="0" * 64,
                             received_at=timezone.now() - timedelta(minutes=5))

    response = readyz()

    assert response.status_code == 503
    check = response.json()["checks"]["pipeline_lag_seconds"]
    assert response.json()["failing"] == ["pipeline_lag_seconds"]
    assert check["error"] == "pipeline_lagging" and check["max"] == 60 and check["value"] >= 300


def test_readyz_reports_the_pipeline_lag_without_failing_on_it_when_the_limit_is_off(built_index, alice, settings):
    """READY_MAX_PIPELINE_LAG_SECONDS=0, as the Kubernetes ConfigMap sets it: readiness routes traffic."""
    settings.READY_MAX_PIPELINE_LAG_SECONDS = 0
    Statement.objects.create(member=alice.member, jti="stuck", kind="hash", raw="x", digest="0" * 64,
                             received_at=timezone.now() - timedelta(minutes=5))

    response = readyz()

    assert response.status_code == 200
    check = response.json()["checks"]["pipeline_lag_seconds"]
    assert check["ok"] and check["max"] is None and check["value"] >= 300


@pytest.fixture
def broker_at(monkeypatch) -> Iterator:
    """Point the Celery app at another broker URL (Redis) for one test. Celery reads
    CELERY_BROKER_URL from the environment before its configuration."""
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    saved = {key: celery_app.conf[key] for key in ("broker_url", "broker_transport", "broker_transport_options")}

    def point(url: str) -> None:
        celery_app.conf.update(broker_url=url, broker_transport=None, broker_transport_options={})

    yield point
    celery_app.conf.update(saved)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_readyz_names_the_broker_when_it_is_unreachable(built_index, broker_at):
    broker_at(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there

    response = readyz()

    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["broker"]
    assert body["checks"]["broker"]["error"] == "broker_unavailable"
    assert body["checks"]["database"] == {"ok": True}


def test_readyz_answers_when_the_broker_accepts_connections_but_never_replies(built_index, broker_at, settings):
    settings.READY_CHECK_TIMEOUT_SECONDS = 0.5
    with socket.socket() as silent:  # the kernel completes connections; nobody ever answers a PING
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        broker_at(f"redis://127.0.0.1:{silent.getsockname()[1]}/0")

        response = readyz()

    assert response.status_code == 503
    assert response.json()["failing"] == ["broker"]
    assert response.json()["checks"]["broker"] == {"ok": False, "error": "broker_unavailable", "detail": "TimeoutError"}


def test_readyz_does_not_show_the_broker_url_or_its_password(built_index, broker_at):
    broker_at(f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0")

    response = readyz()

    assert response.status_code == 503
    assert b"hunter2" not in response.content and b"redis://" not in response.content
