"""A database that goes away in the middle of verification is not the statements' fault: they stay
`received` for the sweep, never rejected. (tests/hashes/test_hostile_input.py covers the other side:
one statement the database itself refuses is rejected alone.)"""

from __future__ import annotations

import pytest
from django.db import OperationalError, connection

from hashes.models import Statement
from hashes import tasks as hashes_tasks
from hashes.services import verification
from tests.databases import postgresql_only
from tests.factories import md5

pytestmark = postgresql_only("ends its own PostgreSQL session from a trigger, as a database restart does")


@pytest.fixture
def outage_on_note(transactional_db):
    """Writing a statement whose note is 'outage' ends the writing session, as a restart of the
    database would (FATAL: terminating connection due to administrator command)."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE FUNCTION outage() RETURNS trigger LANGUAGE plpgsql AS "
                       "$$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$")
        cursor.execute("CREATE TRIGGER outage BEFORE UPDATE ON hashes_statement FOR EACH ROW "
                       "WHEN (NEW.note = 'outage') EXECUTE FUNCTION outage()")
    yield
    with connection.cursor() as cursor:  # a new session: the trigger ended the test's own
        cursor.execute("DROP TRIGGER IF EXISTS outage ON hashes_statement")
        cursor.execute("DROP FUNCTION IF EXISTS outage()")


def test_a_connection_lost_during_verification_rejects_no_statement(alice, outage_on_note, monkeypatch):
    # Verification runs below, by hand, not from the submission's queue message.
    monkeypatch.setattr(hashes_tasks, "enqueue_verification", lambda *args, **kwargs: None)
    alice.submit(alice.statement([md5(1)]), alice.statement([md5(2)], note="outage"), alice.statement([md5(3)]))
    ids = [str(pk) for pk in Statement.objects.values_list("pk", flat=True)]

    with pytest.raises(OperationalError):
        verification.statements_verify(ids=ids)

    assert list(Statement.objects.values_list("state", flat=True)) == ["received"] * 3
    with connection.cursor() as cursor:  # the database is back
        cursor.execute("DROP TRIGGER outage ON hashes_statement")
    assert verification.statements_verify(ids=ids) == 3
    assert list(Statement.objects.values_list("state", flat=True)) == ["verified"] * 3
