"""GET /api/v1/stats/: who may read it, which months it answers for, its refusals (each a stable code
in the API's error shape), and what one request costs the database."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from members.services import token_create
from tests.factories import md5


def error_of(response) -> tuple[int, str, object]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return response.status_code, body["error"]["code"], body["error"]["details"]


def test_it_needs_a_token_with_the_read_scope(cast, anonymous):
    submit_only = APIClient()
    token = token_create(member=cast["alice"].member, scopes=["submit"]).plaintext
    submit_only.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    assert error_of(anonymous.get("/api/v1/stats/"))[:2] == (401, "not_authenticated")
    assert error_of(submit_only.get("/api/v1/stats/"))[:2] == (403, "insufficient_scope")
    assert cast["charlie"].api.get("/api/v1/stats/").status_code == 200


@pytest.mark.parametrize("query, code, details", [
    ("period=week", "period_invalid", {"allowed": ["month"]}),
    ("period=", "period_invalid", {"allowed": ["month"]}),
    ("from=2025-13", "month_invalid", {"parameter": "from"}),
    ("from=2025-1", "month_invalid", {"parameter": "from"}),
    ("to=january", "month_invalid", {"parameter": "to"}),
    ("to=0000-01", "month_invalid", {"parameter": "to"}),
    ("from=2025-01&to=9999-12", "month_invalid", {"parameter": "to"}),
    ("from=2025-03&to=2025-01", "range_invalid", {"from": "2025-03", "to": "2025-01"}),
    ("from=2010-01&to=2025-01", "range_too_long", {"max_months": 120, "months": 181}),
    ("from=2015-01&to=2025-01", "range_too_long", {"max_months": 120, "months": 121}),
])
def test_bad_parameters_are_refused_with_a_stable_code(cast, query, code, details):
    assert error_of(cast["charlie"].api.get(f"/api/v1/stats/?{query}")) == (400, code, details)


def test_without_a_range_it_answers_the_twelve_months_up_to_the_current_one(cast, clock):
    clock.set("2025-03-14T12:00:00")

    body = cast["charlie"].api.get("/api/v1/stats/").json()
    only_from = cast["charlie"].api.get("/api/v1/stats/?from=2024-11").json()
    only_to = cast["charlie"].api.get("/api/v1/stats/?to=2024-06").json()

    assert (body["from"], body["to"], len(body["periods"])) == ("2024-04", "2025-03", 12)
    assert [p["period"] for p in body["periods"]][:3] == ["2024-04", "2024-05", "2024-06"]
    assert (only_from["from"], only_from["to"]) == ("2024-11", "2025-03")
    assert (only_to["from"], only_to["to"]) == ("2023-07", "2024-06")


def test_a_hundred_and_twenty_months_are_answered_and_empty_months_are_zeros(cast):
    body = cast["charlie"].api.get("/api/v1/stats/?from=2015-02&to=2025-01").json()

    assert len(body["periods"]) == 120
    assert body["labels"] == [] and body["total"]["by_label"] == {}
    assert body["total"]["all_labels"] == {
        "hashes": {"added": 0, "retracted_by_submitters": 0, "removed_by_dispute": 0},
        "disputes": {"opened": 0, "resolved": {"upheld": 0, "relabelled": 0, "removed": 0},
                     "median_resolution_seconds": {"all": None, "upheld": None, "relabelled": None, "removed": None}},
        "contributions": {"platform": 0, "government": 0, "ngo": 0},
    }


def figure_queries(actor, query: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        assert actor.api.get(f"/api/v1/stats/?{query}").status_code == 200
    return [q["sql"] for q in captured.captured_queries if "hashes_" in q["sql"]]


def test_the_database_counts_the_figures_in_a_fixed_number_of_queries(world, cast):
    world.clock.set("2025-01-02T10:00:00")
    world.share("alice", 1, ("recruitment",))
    few = figure_queries(cast["charlie"], "from=2025-01&to=2025-01")
    cast["alice"].submit(*[cast["alice"].statement([md5(n)], labels=["glorification"], iat=world.iat)
                           for n in range(100, 160)])
    world.pipeline()
    cache.clear()

    many = figure_queries(cast["charlie"], "from=2025-01&to=2025-01")

    assert len(many) == len(few) <= 10
    body = cast["charlie"].api.get("/api/v1/stats/?from=2025-01&to=2025-01").json()
    assert body["total"]["all_labels"]["hashes"]["added"] == 61


def test_figures_are_counted_once_a_minute_at_most(world, cast, clock):
    world.clock.set("2025-01-02T10:00:00")
    world.share("alice", 1)
    first = cast["charlie"].api.get("/api/v1/stats/?from=2025-01&to=2025-01").json()
    world.share("alice", 2)

    assert figure_queries(cast["bob"], "from=2025-01&to=2025-01") == []  # served from the cache
    assert cast["bob"].api.get("/api/v1/stats/?from=2025-01&to=2025-01").json() == first
    assert cast["bob"].api.get("/api/v1/stats/?from=2024-12&to=2025-01").json()["total"]["all_labels"][
        "hashes"]["added"] == 2  # another range is counted afresh


def test_statistics_have_their_own_rate_per_token(cast, settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "stats": (2, 60)}
    charlie = cast["charlie"]

    answers = [charlie.api.get(f"/api/v1/stats/?from=2024-0{n}").status_code for n in range(1, 4)]

    assert answers == [200, 200, 429]
    assert charlie.api.get("/api/v1/feed/").status_code == 200  # other reads are counted apart
    assert cast["bob"].api.get("/api/v1/stats/").status_code == 200
