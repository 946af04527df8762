"""What publishing reads does not grow with the hashes a batch touches: who made each live
statement, and for whom, comes with the live statements themselves, in one read per batch."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.databases import postgresql_only
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


def test_a_batch_of_new_values_reads_no_live_statements(alice, pipeline):
    alice.submit(*(alice.statement([md5(i)]) for i in range(5)))
    with CaptureQueriesContext(connection) as captured:
        pipeline()
    assert not [q["sql"] for q in captured.captured_queries if 'FROM "hashes_corroboration"' in q["sql"]
                and q["sql"].lstrip().startswith("SELECT")]


@postgresql_only("the planner's choice of index is PostgreSQL's")
def test_hashes_are_found_by_value_through_an_index_not_a_scan_of_the_table(alice, bob, trusted_group, pipeline):
    """Publishing looks up the batch's values, and match the exact values asked, in every audience:
    a condition neither partial unique index answered scanned the whole hash table each time."""
    alice.submit(alice.statement([md5(1)]), alice.statement([md5(2)], share="trusted"))
    pipeline()
    with CaptureQueriesContext(connection) as captured:
        bob.submit(bob.statement([md5(1)]), bob.statement([md5(2)], share="trusted"))
        pipeline()
        assert alice.api.post("/api/v1/match/", {"signals": [md5(1), md5(2)]}, format="json").status_code == 200
    by_value = [q["sql"] for q in captured.captured_queries
                if q["sql"].startswith("SELECT") and 'FROM "hashes_hash"' in q["sql"] and '"value"' in q["sql"]]

    assert len(by_value) >= 2  # publishing's and match's
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # an index it can use, it then uses
        for sql in by_value:
            cursor.execute("EXPLAIN " + sql)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "Seq Scan on hashes_hash" not in plan, (sql, plan)
