"""The feed guarantee under concurrency: a reader that always asks for events after the last seq
it saw never misses one, even while several publishers commit at once.

Each publisher keeps its transaction open for a random while after appending its events, which is
exactly when a sequence-numbered log would let a later seq become visible before an earlier one."""

from __future__ import annotations

import random
import threading
import time

import pytest
from django.db import connections, transaction

from hashes.models import Event, Statement
from hashes.selectors import feed_page
from hashes.services import publishing, verification
from hashes.services.submission import statements_submit
from hashes.tasks import verify_statements
from hashes.visibility import Viewer
from tests.databases import postgresql_only
from tests.factories import md5

PUBLISHERS = 4
ROUNDS = 12
PER_ROUND = 5

# Serialized rollback: every transactional test restores what migrations made (content types,
# permissions, the taxonomy) with the same ids, so the order the suite runs in cannot matter.
pytestmark = [
    postgresql_only("SQLite runs one writer at a time; this proof needs PostgreSQL's concurrent writers"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    """The threads below are the workers; nothing should also go to the broker."""
    monkeypatch.setattr(verify_statements, "apply_async", lambda *a, **k: None)


def publisher(actor, start: int, errors: list[BaseException]) -> None:
    try:
        for round_ in range(ROUNDS):
            base = start + round_ * PER_ROUND
            statements = [actor.statement([md5(n)]) for n in range(base, base + PER_ROUND)]
            accepted = statements_submit(member=actor.member, statements=statements).accepted
            # Every other round as a verification task does it: publishing in verification's own
            # transaction when the feed lock is free; the batch below then finds little or nothing.
            verification.statements_verify(ids=[a["id"] for a in accepted], publish=bool(round_ % 2))
            settled = None
            while settled is None:  # another publisher holds the feed lock: try again
                with transaction.atomic():
                    settled = publishing.publish_batch(limit=PER_ROUND)
                    time.sleep(random.uniform(0, 0.02))  # commit late, holding whatever was appended
    except BaseException as exc:  # reported by the test thread
        errors.append(exc)
    finally:
        connections.close_all()


def test_it_never_skips_events_committed_out_of_order(actor_factory):
    actors = [actor_factory(f"publisher-{n}") for n in range(PUBLISHERS)]
    reader = actor_factory("reader")
    viewer = Viewer.for_member(reader.member)
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=publisher, args=(actor, n * 10_000, errors)) for n, actor in enumerate(actors)
    ]
    seen: list[int] = []
    after = 0
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        page = feed_page(viewer=viewer, after=after, limit=7)
        seen += [e["seq"] for e in page["events"]]
        after = page["next_after"]
    for thread in threads:
        thread.join()
    while True:
        page = feed_page(viewer=viewer, after=after, limit=50)
        seen += [e["seq"] for e in page["events"]]
        after = page["next_after"]
        if not page["has_more"]:
            break

    assert errors == []
    expected = PUBLISHERS * ROUNDS * PER_ROUND
    assert Statement.objects.filter(state="published").count() == expected
    assert list(Event.objects.values_list("seq", flat=True)) == list(range(1, expected + 1))
    assert seen == list(range(1, expected + 1))
