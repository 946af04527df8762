"""While the database cannot be reached, every way in answers 503 `database_unavailable` with
Retry-After (a client's cue to try again), never a 500, and serves again as soon as it is back.
tests/e2e/test_faults.py does this with real restarts of PostgreSQL under load."""

from __future__ import annotations

import socket

import pytest
from django.db import connection

from hashes.models import Statement
from tests.factories import md5


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket is closed


@pytest.fixture
def database_down(transactional_db):
    """The connection points where no database answers (a stopped PostgreSQL, an SQLite file that
    cannot be opened) until `back()` is called; every query fails as it would in an outage."""
    saved = dict(connection.settings_dict)

    def back() -> None:
        connection.close()
        connection.settings_dict.update(saved)

    connection.close()
    if connection.vendor == "postgresql":
        connection.settings_dict.update(HOST="127.0.0.1", PORT=str(closed_port()))
    else:
        connection.settings_dict["NAME"] = "/nonexistent/consortium/db.sqlite3"
    yield back
    back()


def test_requests_answer_503_with_retry_after_while_the_database_is_down(alice, database_down):
    statement = alice.statement([md5(1)])

    answers = {
        "submit": alice.api.post("/api/v1/statements/", {"statements": [statement]}, format="json"),
        "feed": alice.api.get("/api/v1/feed/"),
        "taxii": alice.api.get("/taxii2/", HTTP_AUTHORIZATION=f"Token {alice.token}"),
    }

    for way, response in answers.items():
        assert (response.status_code, response["Retry-After"]) == (503, "5"), way
    assert answers["submit"].json()["error"]["code"] == answers["feed"].json()["error"]["code"] == "database_unavailable"
    assert answers["taxii"].json()["error_code"] == "database_unavailable"  # in TAXII's own error shape

    back = database_down
    back()  # the same request goes through, and the one refused left nothing behind
    assert not Statement.objects.exists()
    assert alice.api.post("/api/v1/statements/", {"statements": [statement]}, format="json").status_code == 202
