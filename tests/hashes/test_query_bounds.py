"""Positions in a query (a feed seq, an offset, a dispute id) are bounded by what the database
stores: past that, a validation_error, never a database error, and never one that lasts."""

from __future__ import annotations

import pytest
from django.db import DatabaseError

from tests.databases import postgresql_only
from tests.factories import md5

PAST_BIGINT = [str(2**63), "9" * 30]


@pytest.mark.parametrize("value", PAST_BIGINT)
@pytest.mark.parametrize("path", ["/api/v1/feed/?after={}", "/api/v1/disputes/?after={}",
                                  "/api/v1/hashes/{hash}/statements/?offset={}"])
def test_a_position_past_any_row_is_a_validation_error(alice, pipeline, path, value):
    alice.submit(alice.statement([md5(7)]))
    pipeline()
    hash_id = alice.feed()["events"][0]["hash"]["id"]
    alice.api.raise_request_exception = False

    response = alice.api.get(path.format(value, hash=hash_id))

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "validation_error"


@postgresql_only("prepared statements are PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_a_position_the_database_refuses_does_not_break_the_feed_for_the_next_member(alice, bob):
    """The feed's read is prepared once per PostgreSQL connection (consortium/db.read_prepared). A
    read the database refused (here a seq past bigint, which the API no longer lets through) once made
    every later feed read on that connection, whoever asked, answer 500 until the connection was
    replaced (DATABASE_CONN_MAX_AGE)."""
    from hashes.selectors import feed_events

    assert alice.api.get("/api/v1/feed/").status_code == 200  # the feed read is prepared on this connection
    with pytest.raises(DatabaseError):
        feed_events(2**63, 10)

    bob.api.raise_request_exception = False
    assert bob.api.get("/api/v1/feed/").status_code == 200
