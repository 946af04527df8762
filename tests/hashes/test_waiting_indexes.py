"""hashes/0011_waiting_work_indexes and transparency/0002_statistics_indexes_where_set: a statement
row (inserted on receipt, updated once published) and a corroboration row write an index entry only
where the value is one the queries ask for. The work queues hold waiting statements alone, and
columns empty for most of a row's life are indexed where set. Online on PostgreSQL, like 0008."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg2
import pytest
from django.db import connection

from tests.databases import postgresql_only
from tests.e2e.stack import database_url
from tests.hashes.test_index_migration import Recorder

ROOT = Path(__file__).resolve().parents[2]
waiting = importlib.import_module("hashes.migrations.0011_waiting_work_indexes")
where_set = importlib.import_module("transparency.migrations.0002_statistics_indexes_where_set")

# Every index of the statement table that has no condition: what identifies a statement, and a
# member's statements by time (the daily quota, the member's list).
UNCONDITIONAL = {"hashes_statement_pkey", "statement_jti_unique_per_member", "statement_member_recent_size"}


class Catalogue(Recorder):
    """A Recorder whose catalogue holds no index yet (nothing was left INVALID)."""

    def __init__(self, vendor: str) -> None:
        super().__init__(vendor)
        self.connection.cursor = lambda: Nothing()


class Nothing:
    def __enter__(self) -> Nothing:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def execute(self, sql: str, params=None) -> None:
        pass

    def fetchone(self) -> None:
        return None


def statement_indexes(cursor) -> dict[str, str]:
    cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'hashes_statement'")
    return dict(cursor.fetchall())


@postgresql_only("the indexes' conditions are read from PostgreSQL's catalogue")
@pytest.mark.django_db
def test_a_published_statement_is_in_no_work_queue_and_empty_columns_are_not_indexed():
    with connection.cursor() as cursor:
        indexes = statement_indexes(cursor)
        assert {name for name, definition in indexes.items() if " WHERE " not in definition} == UNCONDITIONAL
        assert "WHERE ((state)::text = 'received'::text)" in indexes["statement_received"]
        assert "WHERE ((state)::text = 'verified'::text)" in indexes["statement_verified"]
        assert "WHERE ((state)::text = 'received'::text)" in indexes["statement_received_queued"]
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'transparency_corroboration_ended_set'")
        assert cursor.fetchone()[0].endswith("WHERE (retracted_at IS NOT NULL)")


def test_the_migrations_run_outside_a_transaction_and_build_before_they_drop():
    assert waiting.Migration.atomic is False and where_set.Migration.atomic is False
    kinds = [type(op).__name__ for op in waiting.Migration.operations]
    assert kinds == ["AddIndexOnline"] * 5 + ["RemoveIndexOnline"] * 2 + ["SeparateDatabaseAndState"]
    editor = Catalogue("postgresql")
    where_set.where_set(None, editor)
    statements = [sql for _, sql in editor.done]
    assert [s.split()[0] for s in statements] == ["CREATE", "CREATE", "DROP", "DROP"]


@pytest.mark.parametrize("vendor, concurrently", [("postgresql", True), ("sqlite", False)])
def test_every_index_is_made_and_dropped_concurrently_on_postgresql_only(vendor, concurrently):
    editor = Catalogue(vendor)
    for forwards, backwards in ((waiting.drop_indexes, waiting.create_indexes),
                                (where_set.where_set, where_set.everywhere)):
        forwards(None, editor)
        backwards(None, editor)
    statements = [sql for kind, sql in editor.done if kind == "sql"]
    assert len(statements) == 2 * len(waiting.DROPPED) + 8
    assert all((" CONCURRENTLY " in sql) == concurrently for sql in statements)


@postgresql_only("CONCURRENTLY is PostgreSQL's; the migrations are also checked here to run for real")
def test_the_migrations_run_forwards_backwards_and_again_after_an_interruption():
    url = database_url().rsplit("/", 1)[0] + f"/online_{uuid.uuid4().hex[:12]}"
    name = url.rsplit("/", 1)[1]
    admin = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SECRET_KEY": "migration-test"}
    new = {"statement_received", "statement_verified", "statement_received_queued", "statement_key_received", "statement_share_group",
           "transparency_statement_published_set"}
    old = {"statement_work_queue", "statement_sweep", *waiting.DROPPED, "transparency_statement_published"}
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')

        def migrate(*target: str) -> None:
            subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0", *target],
                           cwd=ROOT, env=env, check=True, timeout=300)

        def indexes() -> dict[str, str]:
            with psycopg2.connect(url) as db, db.cursor() as cursor:
                return statement_indexes(cursor)

        migrate()
        assert new <= set(indexes()) and not old & set(indexes())
        migrate("transparency", "0001")
        migrate("hashes", "0008")
        assert old <= set(indexes()) and not new & set(indexes())
        # Stopped part way on a live database: one new index built, one left INVALID by an
        # interrupted build, one old index already gone. Running `migrate` again finishes it.
        with psycopg2.connect(url) as db, db.cursor() as cursor:
            cursor.execute("CREATE INDEX statement_key ON hashes_statement (key_id) WHERE key_id IS NOT NULL")
            cursor.execute("CREATE INDEX statement_verified ON hashes_statement (state)")
            cursor.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'statement_verified'::regclass")
            cursor.execute("CREATE INDEX transparency_statement_published_set ON hashes_statement (published_at)")
            cursor.execute("UPDATE pg_index SET indisvalid = false "
                           "WHERE indexrelid = 'transparency_statement_published_set'::regclass")
            cursor.execute('DROP INDEX "statement_sweep"')
        migrate()
        found = indexes()
        assert new <= set(found) and not old & set(found)
        assert set(found) - {name for name, definition in found.items() if " WHERE " in definition} == UNCONDITIONAL
        with psycopg2.connect(url) as db, db.cursor() as cursor:
            cursor.execute("SELECT bool_and(i.indisvalid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                           "WHERE c.relname = ANY(%s)", [sorted(new)])
            assert cursor.fetchone()[0]
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's planner: PostgreSQL proves implication")
@pytest.mark.django_db
def test_sqlite_answers_every_work_queue_query_from_a_waiting_state_index():
    """SQLite uses a partial index only when a term of the query is its condition (`state = x`); it
    cannot prove `state = x` implies `state IN (...)`, and then scans the whole table."""
    from datetime import datetime, timezone

    from hashes.models import Statement
    from hashes.services.publishing import publishable

    queries = {
        "publishable": publishable()[:500],
        "sweep": Statement.objects.filter(state="received", queued_at__lt=datetime.now(timezone.utc))
        .order_by("-priority", "received_at").values_list("id", flat=True)[:20000],
        "drain": Statement.objects.filter(state="received").values_list("id", flat=True)[:500],
    }
    queries.update({
        f"oldest {state}": Statement.objects.filter(state=state, priority=True).order_by("received_at")
        .values_list("received_at", flat=True)[:1] for state in ("received", "verified")
    })
    for name, query in queries.items():
        sql, params = query.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
            plan = [row[-1] for row in cursor.fetchall()]
        assert not any(step.startswith("SCAN hashes_statement") and " INDEX " not in step for step in plan), (name, plan)
