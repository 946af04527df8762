"""The database the suite runs on, read from settings when the tests are collected.

A test that needs PostgreSQL must be skipped before any database is set up for it: a transactional
test that sets one up and then skips still flushes it on teardown, under the feet of whatever
transactional test runs next on SQLite."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection

ON_POSTGRESQL = settings.DATABASES["default"]["ENGINE"] == "consortium.postgresql"


def postgresql_only(reason: str) -> pytest.MarkDecorator:
    """Skip the test (or, as `pytestmark`, the module) unless the suite runs on PostgreSQL."""
    return pytest.mark.skipif(not ON_POSTGRESQL, reason=reason)


def lock_waiters() -> int:
    """PostgreSQL backends of this database waiting for a lock (row, advisory or the feed head's)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND wait_event_type = 'Lock'")
        return cursor.fetchone()[0]
