"""POST /api/v1/match/ past MATCH_MAX_RESULTS: which matches survive the cut is fixed (nearest first,
then the hash id), only hashes the reader may see are ranked (a hidden one never takes a visible
one's place, nor does one held by `exclude_disputed`), and only the hashes the answer carries are
rendered (MatchViews), each encoded exactly as its view."""

from __future__ import annotations

import orjson
import pytest

from hashes import selectors
from hashes.models import Hash
from hashes.selectors import MatchedHashes, MatchViews
from hashes.visibility import Viewer
from tests.factories import BASE_PDQ, flip, md5, pdq_value

# Distances from BASE_PDQ, two of them twice (different bits), so that the id breaks the tie.
VARIANTS = {"d0": [], "d2a": [0, 1], "d2b": [10, 11], "d5": range(20, 25), "d9a": range(30, 39),
            "d9b": range(40, 49), "d20": range(60, 80)}


def match(actor, *signals, **body):
    response = actor.api.post("/api/v1/match/", {"signals": list(signals), **body}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def found(result):
    return [(m["hash"]["id"], m["distance"]) for m in result["matches"]]


def store_apart(settings, pipeline, *batches):
    """Submit each (actor, statements) and publish them as hashes of their own (no dedupe, no families)."""
    settings.MATCH_DISTANCE = settings.DEDUPE_DISTANCE = 0
    for actor, statements in batches:
        actor.submit(*statements)
        pipeline()
    settings.MATCH_DISTANCE = 31


@pytest.fixture
def variants(alice, pipeline, settings):
    """Seven consortium-wide PDQ hashes near BASE_PDQ, submitted farthest first (ids do not follow distance)."""
    names = list(reversed(VARIANTS))
    store_apart(settings, pipeline, (alice, [alice.statement([pdq_value(flip(BASE_PDQ, VARIANTS[n]))]) for n in names]))
    return {n: Hash.objects.get(value=flip(BASE_PDQ, VARIANTS[n])).pk for n in VARIANTS}


def test_past_the_limit_the_nearest_survive_with_the_id_breaking_ties(bob, variants, settings):
    everything = found(match(bob, {"type": "pdq", "value": BASE_PDQ})["results"][0])
    expected = sorted((pk, len(list(VARIANTS[n]))) for n, pk in variants.items())
    assert everything == sorted(expected, key=lambda m: (m[1], m[0]))

    for limit in (1, 2, 3, 5, 6):
        settings.MATCH_MAX_RESULTS = limit
        [result] = match(bob, {"type": "pdq", "value": BASE_PDQ})["results"]
        assert found(result) == everything[:limit], limit
        assert result["truncated"] is True
    settings.MATCH_MAX_RESULTS = 7
    [result] = match(bob, {"type": "pdq", "value": BASE_PDQ})["results"]
    assert found(result) == everything and result["truncated"] is False


def test_a_tie_at_the_limit_is_cut_by_the_hash_id(bob, variants, settings):
    settings.MATCH_MAX_RESULTS = 2
    [result] = match(bob, {"type": "pdq", "value": BASE_PDQ})["results"]

    lower = min(variants["d2a"], variants["d2b"])
    assert found(result) == [(variants["d0"], 0), (lower, 2)]


def test_hidden_candidates_never_take_a_visible_ones_place(alice, bob, charlie, trusted_group, variants, pipeline,
                                                           settings):
    settings.MATCH_MAX_RESULTS = 3
    query = {"type": "pdq", "value": flip(BASE_PDQ, [100])}  # 1 bit from d0, 3 from d2a and d2b
    alone = match(charlie, query)
    # The trusted group now holds hashes nearer the query than any of charlie's: the query's own
    # value, and others 1 and 2 bits from it.
    store_apart(settings, pipeline, (alice, [alice.statement([pdq_value(flip(BASE_PDQ, bits))], share="trusted")
                                             for bits in ([100], [100, 200], [100, 200, 201])]))
    settings.MATCH_MAX_RESULTS = 3

    assert match(charlie, query) == alone
    assert [d for _, d in found(alone["results"][0])] == [1, 3, 3]
    [inside] = match(bob, query)["results"]
    assert [d for _, d in found(inside)] == [0, 1, 1]
    assert inside["truncated"] is True


def test_a_hash_held_as_disputed_does_not_take_a_place(bob, charlie, homeoffice, variants, pipeline, settings):
    homeoffice.submit(homeoffice.feedback(pdq_value(BASE_PDQ), "disagree", reasons=["newsworthy"]))
    pipeline()
    settings.MATCH_MAX_RESULTS = 2

    [held] = match(bob, {"type": "pdq", "value": BASE_PDQ}, exclude_disputed=True)["results"]
    [shown] = match(bob, {"type": "pdq", "value": BASE_PDQ})["results"]

    assert shown["matches"][0]["hash"]["dispute"]["state"] == "open"
    assert found(held) == [(min(variants["d2a"], variants["d2b"]), 2), (max(variants["d2a"], variants["d2b"]), 2)]
    assert held["truncated"] is True


def test_only_the_hashes_an_answer_carries_are_rendered(bob, variants, settings, monkeypatch):
    rendered = []
    hash_view = selectors.hash_view
    monkeypatch.setattr(selectors, "hash_view", lambda hash_, *a, **k: rendered.append(hash_.pk) or hash_view(
        hash_, *a, **k))
    settings.MATCH_MAX_RESULTS = 3

    [result] = match(bob, {"type": "pdq", "value": BASE_PDQ})["results"]

    assert rendered and set(rendered) <= {pk for pk, _ in found(result)}


def test_no_hash_is_rendered_past_the_byte_bound(alice, bob, variants, pipeline, settings, monkeypatch):
    alice.submit(alice.statement([md5(1)]))
    pipeline()
    exact = Hash.objects.get(signal_type="md5").pk
    one = len(orjson.dumps(match(bob, md5(1))["results"][0]["matches"][0]))
    rendered = []
    hash_view = selectors.hash_view
    monkeypatch.setattr(selectors, "hash_view", lambda hash_, *a, **k: rendered.append(hash_.pk) or hash_view(
        hash_, *a, **k))
    settings.MATCH_MAX_RESPONSE_BYTES = 2 * one

    body = match(bob, {"type": "pdq", "value": BASE_PDQ}, md5(1))

    assert body["truncated"] is True and body["results"][1]["matches"] == []
    assert exact not in rendered


def test_each_hash_is_encoded_exactly_as_its_view_whatever_it_holds(alice, bob, charlie, homeoffice, pipeline,
                                                                    settings):
    """Most hashes of a family share one encoded view, cut where their own id, value and cluster
    stand (MatchViews._template); the others are encoded whole. Either way the bytes are the view's."""
    family = [flip(BASE_PDQ, range(200 + 3 * n, 203 + 3 * n)) for n in range(6)]
    store_apart(settings, pipeline, (alice, [alice.statement([pdq_value(v) for v in family] + [md5(1), md5(2)],
                                                             labels=["glorification"])]))
    # Apart from the rest of the family: one relabelled, one with feedback and a dispute, one with a
    # link (a later variant joined its family), one corroborated by another member too.
    Hash.objects.filter(value=family[1]).update(labels_override=["recruitment"])
    charlie.submit(charlie.feedback(pdq_value(family[2]), "disagree", reasons=["newsworthy"]))
    bob.submit(bob.statement([pdq_value(family[4])]))
    pipeline()
    alice.submit(alice.statement([pdq_value(flip(family[3], range(100, 120)))]))
    pipeline()
    viewer = Viewer.for_member(homeoffice.member)
    matched = MatchedHashes.read(viewer, set(Hash.objects.values_list("pk", flat=True)))
    assert len(matched.rows) == 9

    views = MatchViews(matched, viewer, set(matched.rows))
    for pk in matched.rows:
        assert views.encoded(pk) == orjson.dumps(views.view(pk)), pk
    shared = [parts for parts in views._templates.values() if isinstance(parts, tuple)]
    assert shared, "the family's plain hashes share an encoded view"
    alone = MatchViews(matched, viewer, set(matched.rows))
    assert {pk: alone.encoded(pk) for pk in matched.rows} == {pk: views.encoded(pk) for pk in matched.rows}
