"""hashes/0008_indexes_where_used changes the indexes of the three busiest tables online on
PostgreSQL: outside a transaction, new indexes built before old ones go, each CONCURRENTLY, so that
no read or write of those tables waits for an index build."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg2
import pytest

from tests.databases import postgresql_only
from tests.e2e.stack import database_url

ROOT = Path(__file__).resolve().parents[2]
migration = importlib.import_module("hashes.migrations.0008_indexes_where_used")


class NoIndexes:
    """A cursor of a database that has none of the indexes asked about (so none is INVALID)."""

    def __enter__(self) -> "NoIndexes":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def execute(self, sql: str, params=()) -> None:
        pass

    def fetchone(self) -> None:
        return None


class Recorder:
    """A schema editor that only writes down what it is asked to do."""

    def __init__(self, vendor: str) -> None:
        self.connection = type("Connection", (), {"vendor": vendor, "alias": "default", "cursor": NoIndexes})()
        self.done: list[tuple] = []

    def quote_name(self, name: str) -> str:
        return f'"{name}"'

    def execute(self, sql: str) -> None:
        self.done.append(("sql", sql))

    def add_index(self, model, index, concurrently: bool = False) -> None:
        self.done.append(("add", index.name, concurrently))


def test_the_migration_runs_outside_a_transaction_and_builds_before_it_drops():
    assert migration.Migration.atomic is False
    kinds = [type(op).__name__ for op in migration.Migration.operations]
    assert kinds == ["AddIndexOnline"] * 4 + ["SeparateDatabaseAndState"]


@pytest.mark.parametrize("vendor, concurrently", [("postgresql", True), ("sqlite", False)])
def test_every_index_is_dropped_and_made_again_concurrently_on_postgresql_only(vendor, concurrently):
    editor = Recorder(vendor)
    migration.drop_indexes(None, editor)
    migration.create_indexes(None, editor)
    statements = [sql for _, sql in editor.done]
    assert len(statements) == 2 * len(migration.DROPPED) - (vendor != "postgresql")  # _like: PostgreSQL's
    assert all((" CONCURRENTLY " in sql) == concurrently for sql in statements)


@postgresql_only("CONCURRENTLY is PostgreSQL's; the migration is also checked here to run for real")
def test_the_migration_runs_forwards_and_backwards_on_postgresql():
    """On a database of its own, from a fresh migrate: back to 0007 and forward to 0008 again, as
    `migrate` runs it (CONCURRENTLY inside a transaction would fail here)."""
    url = database_url().rsplit("/", 1)[0] + f"/online_{uuid.uuid4().hex[:12]}"
    name = url.rsplit("/", 1)[1]
    admin = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SECRET_KEY": "migration-test"}
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')

        def migrate(*target: str) -> None:
            subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0", *target],
                           cwd=ROOT, env=env, check=True, timeout=300)

        def indexes() -> set[str]:
            with psycopg2.connect(url) as db, db.cursor() as cursor:
                cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename IN "
                               "('hashes_statement', 'hashes_event', 'hashes_corroboration')")
                return {row[0] for row in cursor.fetchall()}

        new = {"statement_rejected", "statement_incident", "statement_retracts", "event_dispute"}
        migrate()
        assert new <= indexes() and not set(migration.DROPPED) & indexes()
        migrate("hashes", "0007")
        assert set(migration.DROPPED) <= indexes() and not new & indexes()
        migrate("hashes", "0008")
        assert new <= indexes() and not set(migration.DROPPED) & indexes()
        # Stopped part way on a live database: one new index built, one left INVALID by an interrupted
        # build, one old index already gone. Running `migrate` again finishes it.
        migrate("hashes", "0007")
        with psycopg2.connect(url) as db, db.cursor() as cursor:
            cursor.execute("CREATE INDEX statement_rejected ON hashes_statement (rejection_code) "
                           "WHERE NOT (rejection_code = '')")
            cursor.execute("CREATE INDEX statement_incident ON hashes_statement (incident_id)")
            cursor.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'statement_incident'::regclass")
            cursor.execute('DROP INDEX "hashes_corroboration_hash_id_6794dd9f"')
        migrate("hashes", "0008")
        assert new <= indexes() and not set(migration.DROPPED) & indexes()
        with psycopg2.connect(url) as db, db.cursor() as cursor:
            cursor.execute("SELECT c.relname, i.indisvalid, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                           "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = ANY(%s)", [sorted(new)])
            rebuilt = {name: (valid, definition) for name, valid, definition in cursor.fetchall()}
        assert all(valid for valid, _ in rebuilt.values())
        assert "WHERE (incident_id IS NOT NULL)" in rebuilt["statement_incident"][1]  # built again, as the model says
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
