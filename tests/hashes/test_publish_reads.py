"""What publishing reads does not grow with the hashes a batch touches: who made each live
statement, and for whom, comes with the live statements themselves, in one read per batch."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import md5


def reads_of(pipeline) -> int:
    """The reads of running the pipeline (SQLite writes statement rows one UPDATE each: see
    consortium.db.update_rows)."""
    with CaptureQueriesContext(connection) as captured:
        pipeline()
    return sum(q["sql"].lstrip().upper().startswith("SELECT") for q in captured.captured_queries)


@pytest.mark.parametrize("make", [
    pytest.param(lambda actor, i: actor.statement([md5(i)]), id="corroborations"),
    pytest.param(lambda actor, i: actor.feedback(md5(i), "seen"), id="feedback"),
])
def test_a_batch_on_existing_hashes_reads_as_much_for_thirty_as_for_three(alice, bob, pipeline, make):
    alice.submit(*(alice.statement([md5(i)]) for i in range(40)))
    pipeline()
    bob.submit(*(make(bob, i) for i in range(3)))
    few = reads_of(pipeline)
    bob.submit(*(make(bob, i) for i in range(10, 40)))
    many = reads_of(pipeline)
    assert many == few
