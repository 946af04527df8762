"""The database the suite runs on, read from settings when the tests are collected.

A test that needs PostgreSQL must be skipped before any database is set up for it: a transactional
test that sets one up and then skips still flushes it on teardown, under the feet of whatever
transactional test runs next on SQLite."""

from __future__ import annotations

import pytest
from django.conf import settings

ON_POSTGRESQL = settings.DATABASES["default"]["ENGINE"] == "consortium.postgresql"


def postgresql_only(reason: str) -> pytest.MarkDecorator:
    """Skip the test (or, as `pytestmark`, the module) unless the suite runs on PostgreSQL."""
    return pytest.mark.skipif(not ON_POSTGRESQL, reason=reason)
