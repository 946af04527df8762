"""Two workers given the same statements (a redelivered message, the sweep re-queueing them) never
both verify them: the first claims the rows, the second skips them at once instead of waiting, and
a statement published meanwhile is never set back to `verified` (PostgreSQL: real concurrent
transactions)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from hashes.models import Event, Statement
from hashes.services import publishing, verification
from hashes.services.submission import statements_submit
from hashes.tasks import verify_statements
from tests.databases import postgresql_only
from tests.factories import md5

pytestmark = [
    postgresql_only("SQLite runs one writer at a time; claiming rows with SKIP LOCKED needs PostgreSQL"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_two_workers_verifying_the_same_statements_write_each_result_once(actor_factory, monkeypatch):
    monkeypatch.setattr(verify_statements, "apply_async", lambda *a, **k: None)  # the threads are the workers
    alice = actor_factory("alice")
    accepted = statements_submit(member=alice.member, statements=[alice.statement([md5(n)]) for n in range(5)]).accepted
    ids = [a["id"] for a in accepted]
    claimed, release = threading.Event(), threading.Event()
    contexts: list[int] = []
    load_context = verification.load_context

    def first_holds_its_claim(statements, parsed):
        contexts.append(len(statements))
        if len(contexts) == 1:
            claimed.set()  # the rows are claimed and the transaction is open
            release.wait(10)
        return load_context(statements, parsed)

    monkeypatch.setattr(verification, "load_context", first_holds_its_claim)
    settled: dict[str, Any] = {}

    def worker(name: str) -> None:
        try:
            settled[name] = verification.verify_batch(ids)
        except BaseException as exc:  # reported by the test thread
            settled[name] = exc
        finally:
            connection.close()

    first = threading.Thread(target=worker, args=("first",))
    first.start()
    assert claimed.wait(10)
    second = threading.Thread(target=worker, args=("second",))
    second.start()
    second.join(5)
    second_never_waited = not second.is_alive()
    publishing.publish_verified(batch_size=100)  # whatever the second wrote would be published now...
    release.set()  # ...and the first would then write it over
    first.join(10)
    second.join(10)
    publishing.publish_verified(batch_size=100)

    assert second_never_waited
    assert settled == {"first": 5, "second": 0}
    assert contexts == [5]
    assert set(Statement.objects.values_list("state", flat=True)) == {"published"}
    assert Event.objects.count() == 5
