"""How the server uses its PostgreSQL connections on the hot paths: the reads every request makes
are prepared once per connection (consortium/db.read_prepared), and a connection the server ended
while it sat idle is replaced before a request uses it, without a round trip to find out
(consortium/postgresql/base.py)."""

from __future__ import annotations

import select
import time

import psycopg2
import pytest
from django.db import DatabaseError, close_old_connections, connection, transaction

from consortium.db import read_by_ids, read_prepared
from tests.databases import postgresql_only

pytestmark = postgresql_only("prepared statements and the socket health check are PostgreSQL's")

SQL = "SELECT n, n * 2 FROM generate_series(1, 10000) AS n WHERE n IN ({ids}) ORDER BY n"


def prepared_names() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements ORDER BY name")
        return [name for (name,) in cursor.fetchall()]


def test_a_prepared_read_answers_as_the_plain_read_and_is_prepared_once_per_connection(db):
    ids = [3, 1, 7000, 9999, 12000]  # one past the series: absent

    assert read_by_ids(SQL, ids, prepare="doubles") == read_by_ids(SQL, ids) == [
        (1, 2), (3, 6), (7000, 14000), (9999, 19998)]
    assert read_by_ids(SQL, [], prepare="doubles") == []
    assert read_by_ids(SQL, range(1, 6001), prepare="doubles") == [(n, 2 * n) for n in range(1, 6001)]
    assert len([name for name in prepared_names() if name.startswith("doubles_")]) == 1


def test_a_new_connection_prepares_again(transactional_db):
    assert read_prepared("pair", "SELECT %s::int, %s::text", [1, "a"]) == [(1, "a")]
    connection.close()
    assert read_prepared("pair", "SELECT %s::int, %s::text", [2, "b"]) == [(2, "b")]
    assert [n for n in prepared_names() if n.startswith("pair_")]


def test_two_texts_under_one_name_are_two_statements(db):
    assert read_prepared("same", "SELECT 1", []) == [(1,)]
    assert read_prepared("same", "SELECT 2", []) == [(2,)]
    assert len([n for n in prepared_names() if n.startswith("same_")]) == 2


def test_nothing_is_prepared_when_prepared_statements_are_off(db, settings):
    settings.DATABASE_PREPARED_STATEMENTS = False  # behind PgBouncer in transaction mode
    assert read_by_ids(SQL, [2, 4], prepare="unprepared") == [(2, 4), (4, 8)]
    assert read_prepared("unprepared", "SELECT %s::int", [5]) == [(5,)]
    assert not [n for n in prepared_names() if n.startswith("unprepared_")]


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def terminate(pid: int) -> None:
    """End a session from another one, as a restart or an administrator would, and wait until its
    client has been told (its socket is readable)."""
    params = connection.get_connection_params()
    other = psycopg2.connect(**params)
    try:
        other.autocommit = True
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()
    deadline = time.monotonic() + 10
    while not select.select([connection.connection], [], [], 0.05)[0]:
        assert time.monotonic() < deadline, "the ended session's socket never became readable"


def request(actor, path: str):
    """A request as the server handles one: Django's test client leaves out the connection upkeep
    at the start of a request (close_old_connections, which arms the health check); do it here."""
    close_old_connections()
    return actor.api.get(path)


def test_a_connection_ended_while_idle_is_replaced_before_the_next_request_uses_it(transactional_db, alice):
    assert request(alice, "/api/v1/me/").status_code == 200
    first = backend_pid()
    terminate(first)

    response = request(alice, "/api/v1/me/")  # a 503 database_unavailable if the dead one were used

    assert response.status_code == 200, response.content
    assert backend_pid() != first


def test_a_healthy_idle_connection_is_kept_across_requests(transactional_db, alice):
    assert request(alice, "/api/v1/me/").status_code == 200
    first = backend_pid()
    for _ in range(3):
        assert request(alice, "/api/v1/me/").status_code == 200
    assert backend_pid() == first
    assert connection.is_usable()


@pytest.fixture
def scratch_table(transactional_db):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE prepared_probe (id integer PRIMARY KEY, name varchar(10))")
        cursor.execute("INSERT INTO prepared_probe VALUES (1, 'one')")
    yield "SELECT name FROM prepared_probe WHERE id = %s"
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS prepared_probe")


def from_another_session(sql: str) -> None:
    other = psycopg2.connect(**connection.get_connection_params())
    try:
        other.autocommit = True
        with other.cursor() as cursor:
            cursor.execute(sql)
    finally:
        other.close()


def test_a_prepared_read_is_prepared_again_after_a_migration_changes_what_it_returns(scratch_table):
    """Old processes serve while a release migrates: a column a prepared read returns changes type
    ("cached plan must not change result type") and the next read prepares it again."""
    assert read_prepared("probe", scratch_table, [1]) == [("one",)]
    from_another_session("ALTER TABLE prepared_probe ALTER COLUMN name TYPE varchar(200)")

    assert read_prepared("probe", scratch_table, [1]) == [("one",)]
    assert read_prepared("probe", scratch_table, [1]) == [("one",)]


def test_a_prepared_read_is_prepared_again_after_its_statements_were_dropped(scratch_table):
    """A pooler's reset (DISCARD ALL, DEALLOCATE ALL) drops what the connection had prepared."""
    assert read_prepared("probe", scratch_table, [1]) == [("one",)]
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")

    assert read_prepared("probe", scratch_table, [1]) == [("one",)]


@pytest.mark.parametrize("in_transaction", [False, True])
def test_a_read_that_fails_leaves_its_statement_prepared_and_usable(transactional_db, in_transaction):
    """A prepared statement is the session's: a failed execute (here a value past bigint, as a
    request's bad parameter could send) rolls back, and the statement stays prepared. Forgetting it
    made the next read on that connection, whoever's request it served, fail to PREPARE it again."""
    sql = "SELECT %s::bigint + 1"
    assert read_prepared("plus", sql, [1]) == [(2,)]
    with pytest.raises(DatabaseError):
        if in_transaction:
            with transaction.atomic():
                read_prepared("plus", sql, [str(2**63)])
        else:
            read_prepared("plus", sql, [str(2**63)])

    assert read_prepared("plus", sql, [2]) == [(3,)]
    assert len([n for n in prepared_names() if n.startswith("plus_")]) == 1


def test_a_read_gone_stale_inside_a_transaction_is_prepared_again_after_it(scratch_table):
    """Inside a transaction a stale statement's error is the caller's; the statement, still held by
    the session, is deallocated and prepared again by the next read."""
    assert read_prepared("probe", scratch_table, [1]) == [("one",)]
    from_another_session("ALTER TABLE prepared_probe ALTER COLUMN name TYPE varchar(200)")
    with pytest.raises(DatabaseError), transaction.atomic():
        read_prepared("probe", scratch_table, [1])

    assert read_prepared("probe", scratch_table, [1]) == [("one",)]
    assert read_prepared("probe", scratch_table, [1]) == [("one",)]


def test_percent_signs_read_the_same_prepared_or_not(db, settings):
    sql = "SELECT 'a%%b', %s::text"
    assert read_prepared("percent", sql, ["c"]) == [("a%b", "c")]
    settings.DATABASE_PREPARED_STATEMENTS = False
    assert read_prepared("percent", sql, ["c"]) == [("a%b", "c")]
