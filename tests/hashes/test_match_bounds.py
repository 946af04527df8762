"""POST /api/v1/match/ stays bounded: identical queries are searched once and answered in place,
a vPDQ query carries at most MATCH_MAX_VPDQ_FRAMES distinct usable frames, and an answer stops
taking matches past MATCH_MAX_RESPONSE_BYTES, saying so."""

from __future__ import annotations

import json

import pytest

from hashes import selectors
from tests.factories import BASE_PDQ, flip, md5, pdq_value


def post_match(actor, signals):
    return actor.api.post("/api/v1/match/", {"signals": signals}, format="json")


@pytest.fixture
def stored(alice, pipeline, settings):
    """Three PDQ hashes near BASE_PDQ, stored apart, and one MD5."""
    settings.MATCH_DISTANCE = settings.DEDUPE_DISTANCE = 0
    alice.submit(*[alice.statement([pdq_value(flip(BASE_PDQ, range(d)))], note="n" * 1000) for d in (0, 10, 20)],
                 alice.statement([md5(1)]))
    pipeline()
    settings.MATCH_DISTANCE = 31


def test_identical_queries_are_searched_once_and_answered_in_query_order(bob, stored, monkeypatch):
    searched = []
    search = selectors.search_matches
    monkeypatch.setattr(selectors, "search_matches", lambda viewer, queries, videos: searched.append(queries)
                        or search(viewer, queries, videos))
    pdq = {"type": "pdq", "value": BASE_PDQ}
    narrow = {**pdq, "max_distance": 10}
    signals = [pdq, md5(1), pdq, narrow, md5(1), pdq, md5(2)]

    response = post_match(bob, signals)

    assert response.status_code == 200
    assert [len(queries) for queries in searched] == [4]
    results = response.json()["results"]
    one_by_one = [post_match(bob, [s]).json()["results"][0] for s in signals]
    assert results == one_by_one
    assert [len(r["matches"]) for r in results] == [3, 1, 3, 2, 1, 3, 0]
    assert response.json()["truncated"] is False


def test_an_answer_stops_taking_matches_past_the_byte_bound_and_says_so(bob, stored, settings):
    pdq = {"type": "pdq", "value": BASE_PDQ}
    whole = post_match(bob, [pdq] * 3).json()
    one_hash = len(json.dumps(whole["results"][0]["matches"][0]["hash"]))
    settings.MATCH_MAX_RESPONSE_BYTES = 4 * one_hash

    response = post_match(bob, [pdq] * 3)

    body = response.json()
    assert response.status_code == 200 and body["truncated"] is True
    assert [len(r["matches"]) for r in body["results"]] == [3, 0, 0]
    assert [r["truncated"] for r in body["results"]] == [False, True, True]
    assert body["results"][0] == whole["results"][0]
    assert len(response.content) < len(json.dumps(whole)) / 2


def test_an_answer_always_carries_one_match(bob, stored, settings):
    settings.MATCH_MAX_RESPONSE_BYTES = 1

    body = post_match(bob, [{"type": "pdq", "value": BASE_PDQ}]).json()

    assert len(body["results"][0]["matches"]) == 1 and body["truncated"] is True


def frames(n: int, quality: int = 90, start: int = 0) -> list[dict]:
    return [{"i": i, "t": i / 30, "pdq": f"{start + i:064x}", "q": quality} for i in range(n)]


def test_a_vpdq_query_over_the_frame_bound_is_refused_with_its_code(bob, db, settings):
    settings.MATCH_MAX_VPDQ_FRAMES = 100

    response = post_match(bob, [md5(1), {"type": "vpdq", "frames": frames(101)}])

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "vpdq_query_too_long", "message": response.json()["error"]["message"],
        "details": {"at": "signals[1]", "max_frames": 100, "frames": 101}}


def test_repeated_and_unusable_frames_do_not_count_against_the_bound(bob, db, settings):
    settings.MATCH_MAX_VPDQ_FRAMES = 100
    repeated = [{**f, "i": i} for i, f in enumerate(frames(100) * 3)]
    poor = frames(200, quality=10, start=1000)
    for n, frame in enumerate(poor):
        frame["i"] = 300 + n

    response = post_match(bob, [{"type": "vpdq", "frames": repeated + poor}])

    assert response.status_code == 200, response.content[:300]
    assert response.json()["results"][0]["query"] == {"type": "vpdq", "frame_count": 500}
