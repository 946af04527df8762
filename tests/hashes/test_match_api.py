"""POST /api/v1/match/ and POST /api/v1/hash/: exact matching of every visible, active hash, the
media a member uploads hashed and forgotten, and the reference vectors through the whole pipeline."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from hashes.models import Corroboration, Hash
from hashes.selectors import MatchedHashes, statement_facts
from hashes.visibility import Viewer
from members.models import SharingGroup
from tests.factories import BASE_PDQ, flip, md5, pdq_value, sha256
from tests.signals.vectors import VECTORS, VIDEOS, csv_rows, reference_frames, requires_vectors, requires_video


def match(actor, *signals, **body):
    response = actor.api.post("/api/v1/match/", {"signals": list(signals), **body}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["results"]


@pytest.fixture
def stored(alice, pipeline, settings):
    """PDQ hashes 0, 10, 31 and 32 bits from BASE_PDQ, in four families of their own."""
    settings.MATCH_DISTANCE = 0  # store them apart; the matching below uses its own radius
    settings.DEDUPE_DISTANCE = 0
    values = {d: flip(BASE_PDQ, range(256 - d, 256)) if d else BASE_PDQ for d in (0, 10, 31, 32)}
    alice.submit(*[alice.statement([pdq_value(v)]) for v in values.values()])
    pipeline()
    settings.MATCH_DISTANCE = 31
    return {d: Hash.objects.get(value=v).pk for d, v in values.items()}


def test_a_pdq_query_returns_every_hash_within_31_bits_nearest_first(bob, stored):
    [result] = match(bob, {"type": "pdq", "value": BASE_PDQ})

    assert result["query"] == {"type": "pdq", "value": BASE_PDQ}
    assert [(m["hash"]["id"], m["distance"]) for m in result["matches"]] == [
        (stored[0], 0), (stored[10], 10), (stored[31], 31)]
    first = result["matches"][0]["hash"]
    assert first["submitters"] == [{"member": "alice", "kind": "platform"}]
    assert {"labels", "cluster", "corroboration_count", "state", "statements"} <= set(first)


def test_a_query_may_narrow_its_radius_but_not_widen_it(bob, stored):
    [result] = match(bob, {"type": "pdq", "value": BASE_PDQ, "max_distance": 10})
    assert [m["distance"] for m in result["matches"]] == [0, 10]

    response = bob.api.post("/api/v1/match/", {"signals": [{"type": "pdq", "value": BASE_PDQ, "max_distance": 40}]},
                            format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "max_distance_invalid"


def test_results_come_in_query_order_for_every_signal_type(alice, bob, pipeline):
    alice.submit(alice.statement([md5(1), sha256(2)]))
    pipeline()

    results = match(bob, sha256(2), md5(3), md5(1), {"type": "pdq", "value": BASE_PDQ})

    assert [len(r["matches"]) for r in results] == [1, 0, 1, 0]
    assert results[0]["matches"][0]["hash"]["value"] == f"{2:064x}"
    assert results[2]["matches"][0]["distance"] == 0


def test_hidden_and_retracted_hashes_never_match(alice, bob, charlie, trusted_group, pipeline):
    alice.submit(alice.statement([pdq_value(BASE_PDQ)], share="trusted"))
    alice.submit(alice.statement([md5(5)], jti="gone"))
    pipeline()
    alice.submit(alice.retraction("gone"))
    pipeline()

    assert [len(r["matches"]) for r in match(charlie, {"type": "pdq", "value": BASE_PDQ}, md5(5))] == [0, 0]
    assert [len(r["matches"]) for r in match(bob, {"type": "pdq", "value": BASE_PDQ}, md5(5))] == [1, 0]


def test_a_hash_published_after_the_index_was_built_is_matched(alice, bob, pipeline, settings):
    settings.INDEX_REFRESH_SECONDS = 0
    assert match(bob, {"type": "pdq", "value": BASE_PDQ})[0]["matches"] == []  # builds this process's index

    alice.submit(alice.statement([pdq_value(BASE_PDQ)]))
    pipeline()

    assert len(match(bob, {"type": "pdq", "value": BASE_PDQ})[0]["matches"]) == 1


@pytest.mark.parametrize("body,code", [
    ({"signals": []}, "signals_missing"),
    ({}, "signals_missing"),
    ({"signals": [{"type": "pdq", "value": "xyz"}]}, "signal_value_invalid"),
    ({"signals": [{"type": "sha1", "value": "a" * 40}]}, "signal_type_unknown"),
    ({"signals": [{"type": "md5", "value": "a" * 32, "max_distance": 3}]}, "max_distance_invalid"),
    ({"signals": [{"type": "vpdq", "frames": []}]}, "vpdq_frames_invalid"),
    ({"signals": [{"type": "md5", "value": "a" * 32}] * 1001}, "too_many_queries"),
])
def test_a_bad_match_request_is_a_400_with_its_code(bob, body, code):
    response = bob.api.post("/api/v1/match/", body, format="json")

    assert response.status_code == 400 and response.json()["error"]["code"] == code


def test_matching_needs_the_match_scope(actor_factory):
    reader = actor_factory("reader", scopes=("read",))

    response = reader.api.post("/api/v1/match/", {"signals": [md5(1)]}, format="json")

    assert response.status_code == 403 and response.json()["error"]["code"] == "insufficient_scope"


# --- media ------------------------------------------------------------------------------------------

def upload(actor, path, endpoint="/api/v1/hash/"):
    with open(path, "rb") as handle:
        return actor.api.post(endpoint, {"file": SimpleUploadedFile(path.name, handle.read())}, format="multipart")


@requires_vectors
def test_an_uploaded_image_is_hashed_exactly_like_the_reference(bob):
    row = csv_rows("bridge-mods")[0]

    response = upload(bob, VECTORS / "pdq" / row["file"])

    assert response.status_code == 200
    signals = {s["type"]: s for s in response.json()["signals"]}
    assert signals["pdq"]["value"] == row["reference_pdq"]
    assert set(signals) == {"pdq", "md5", "sha256"}


@requires_vectors
def test_an_uploaded_image_is_matched_against_stored_hashes(alice, bob, pipeline):
    rows = csv_rows("bridge-mods")
    alice.submit(alice.statement([pdq_value(rows[0]["reference_pdq"])], labels=["glorification"]))
    pipeline()

    response = upload(bob, VECTORS / "pdq" / rows[5]["file"], endpoint="/api/v1/match/")  # an edit of the photo

    assert response.status_code == 200
    pdq_result = next(r for r in response.json()["results"] if r["query"]["type"] == "pdq")
    assert pdq_result["matches"][0]["hash"]["labels"] == ["glorification"]
    assert pdq_result["matches"][0]["distance"] <= 31


@requires_vectors
def test_an_unreadable_file_is_a_clear_400(bob):
    response = upload(bob, VECTORS / "pdq" / "modes" / "LAB.tiff")

    assert response.status_code == 400 and response.json()["error"]["code"] == "media_unreadable"


def test_a_request_without_a_file_is_a_400(bob):
    response = bob.api.post("/api/v1/hash/", {"other": "x"}, format="multipart")

    assert response.status_code == 400 and response.json()["error"]["code"] == "file_missing"


def test_a_file_over_the_size_limit_is_a_413(bob, settings):
    settings.MEDIA_MAX_BYTES = 100

    response = bob.api.post("/api/v1/hash/", {"file": SimpleUploadedFile("x.jpg", b"\xff" * 101)}, format="multipart")

    assert response.status_code == 413 and response.json()["error"]["code"] == "media_too_large"


@requires_vectors
@requires_video
def test_an_uploaded_video_gives_the_reference_frames(bob):
    response = upload(bob, VECTORS / "vpdq" / "pattern-sd-grey-bar.mp4")

    assert response.status_code == 200
    frames = next(s for s in response.json()["signals"] if s["type"] == "vpdq")["frames"]
    assert len(frames) == len(reference_frames("pattern-sd-grey-bar"))


@requires_vectors
def test_the_reference_videos_form_the_families_vpdq_says(alice, bob, pipeline):
    jtis = {video: f"video-{video}" for video in VIDEOS}
    for video in VIDEOS:
        alice.submit(alice.statement([{"type": "vpdq", "frames": reference_frames(video)}], content_type="video",
                                     jti=jtis[video]))
    pipeline()

    # Each video is a hash of its own or, matching another on both percentages, corroborates it.
    cluster = {video: Corroboration.objects.get(statement__jti=jtis[video]).hash.cluster_id for video in VIDEOS}
    chairs = {cluster[v] for v in VIDEOS if v.startswith("chair")}
    assert len(chairs) == 1
    assert cluster["doorknob-hd-no-bar"] not in chairs and cluster["pattern-sd-grey-bar"] not in chairs
    assert cluster["doorknob-hd-no-bar"] != cluster["pattern-sd-grey-bar"]
    [result] = match(bob, {"type": "vpdq", "frames": reference_frames("chair-22-sd-sepia-bar")})
    assert result["matches"] and {m["hash"]["cluster"] for m in result["matches"]} == chairs
    assert all(max(m["query_match_percent"], m["stored_match_percent"]) >= 80 for m in result["matches"])


def test_a_match_shows_each_hash_exactly_as_its_detail_does_to_every_reader(
        alice, bob, charlie, homeoffice, trusted_group, pipeline):
    """The match path reads hashes its own way (two queries for any number of hashes, feedback,
    disputes and links only where there are some): what it shows must be what hashes/{id}/ shows."""
    variant = flip(BASE_PDQ, range(12))
    alice.submit(alice.statement([pdq_value(BASE_PDQ)], labels=["glorification"]))
    pipeline()
    alice.submit(alice.statement([pdq_value(variant)], labels=["recruitment"]))
    bob.submit(bob.statement([pdq_value(BASE_PDQ)], share="trusted", labels=["recruitment"]))
    pipeline()
    charlie.submit(charlie.feedback(pdq_value(BASE_PDQ), "disagree", reasons=["newsworthy"]))
    homeoffice.submit(homeoffice.feedback(pdq_value(variant), "seen"))
    pipeline()
    assert Hash.objects.count() == 2

    for reader in (alice, bob, charlie, homeoffice):
        matches = match(reader, {"type": "pdq", "value": BASE_PDQ})[0]["matches"]
        assert len(matches) == 2
        for found in matches:
            detail = reader.api.get(f"/api/v1/hashes/{found['hash']['id']}/").json()
            for only_in_detail in ("created_at", "updated_at", "corroborations", "corroborations_omitted"):
                detail.pop(only_in_detail)
            assert found["hash"] == detail
    shown = {m["hash"]["value"]: m["hash"] for m in match(bob, {"type": "pdq", "value": BASE_PDQ})[0]["matches"]}
    assert shown[BASE_PDQ]["corroboration_count"] == 2 and shown[BASE_PDQ]["dispute"]["state"] == "open"
    assert shown[variant]["links"] and shown[variant]["feedback"]["seen"] == 1
    hidden = {m["hash"]["value"]: m["hash"] for m in match(charlie, {"type": "pdq", "value": BASE_PDQ})[0]["matches"]}
    assert hidden[BASE_PDQ]["corroboration_count"] == 1 and hidden[BASE_PDQ]["labels"] == ["glorification"]


def test_hashes_asserted_by_one_statement_share_its_part_but_not_their_own(alice, bob, pipeline, settings):
    """A match builds what a statement says once for all the hashes it asserts (MatchedHashes.views);
    what is each hash's own (its id, value, cluster, an administrator's labels) stays its own."""
    settings.DEDUPE_DISTANCE = 0
    near = flip(BASE_PDQ, range(250, 256))
    alice.submit(alice.statement([pdq_value(BASE_PDQ), pdq_value(near), md5(7)], labels=["glorification"]))
    pipeline()
    relabelled = Hash.objects.get(value=near)
    Hash.objects.filter(pk=relabelled.pk).update(labels_override=["recruitment"])

    [result, exact] = match(bob, {"type": "pdq", "value": BASE_PDQ}, md5(7))

    first, second = (m["hash"] for m in result["matches"])
    assert (first["value"], second["value"]) == (BASE_PDQ, near)
    assert (first["labels"], second["labels"]) == (["glorification"], ["recruitment"])
    assert first["statements"] == second["statements"] == exact["matches"][0]["hash"]["statements"]
    for view in (first, second, exact["matches"][0]["hash"]):
        detail = bob.api.get(f"/api/v1/hashes/{view['id']}/").json()
        assert {k: view[k] for k in ("labels", "statements", "submitters", "corroboration_count")} == \
               {k: detail[k] for k in ("labels", "statements", "submitters", "corroboration_count")}


def test_a_match_counts_each_view_at_exactly_its_encoded_length(alice, bob, pipeline, settings):
    """The answer's byte bound (MATCH_MAX_RESPONSE_BYTES) counts each hash view without encoding
    the statements it shares with other hashes again: the count is the view's JSON length exactly."""
    settings.DEDUPE_DISTANCE = 0
    alice.submit(alice.statement([pdq_value(BASE_PDQ), pdq_value(flip(BASE_PDQ, range(3))), md5(1)],
                                 labels=["glorification"]),
                 alice.statement([pdq_value(flip(BASE_PDQ, range(200, 210)))]))
    pipeline()
    Hash.objects.filter(value=BASE_PDQ).update(labels_override=["recruitment", "instruction"])
    viewer = Viewer.for_member(bob.member)
    matched = MatchedHashes.read(viewer, set(Hash.objects.values_list("pk", flat=True)))

    views, sizes = matched.views(viewer, set(matched.rows))

    assert len(views) == 4
    assert sizes == {pk: len(orjson.dumps(view)) for pk, view in views.items()}


def test_the_match_read_returns_what_the_rule_allows_for_every_viewer_shape(
        alice, bob, charlie, homeoffice, trusted_group, pipeline):
    """MatchedHashes.read is one SQL statement for the hashes and the statements they hold: for every
    kind of viewer (in a group, outside it, narrowed to one audience) and every kind of statement
    (shared with everyone, with a group, retracted, disputed, asserting several hashes), it must keep
    exactly the live statements the one rule lets the viewer see, and read the facts of those and of
    no other, as the feed's own read (statement_facts) reads them."""
    solo = SharingGroup.objects.create(slug="solo", name="Solo")
    solo.members.set([charlie.member])
    alice.submit(alice.statement([md5(1), md5(2)], labels=["glorification", "recruitment"]))
    alice.submit(alice.statement([md5(2), md5(3)], share="trusted", labels=["instruction"]))
    bob.submit(bob.statement([md5(1)], labels=["recruitment"]))
    charlie.submit(charlie.statement([md5(1), md5(4)], jti="gone"), charlie.statement([md5(5)], share="solo"))
    pipeline()
    charlie.submit(charlie.retraction("gone"))
    homeoffice.submit(homeoffice.feedback(md5(1), "disagree", reasons=["newsworthy"]))
    pipeline()
    candidates = set(Hash.objects.values_list("pk", flat=True))
    assert len(candidates) == 5 and Corroboration.objects.filter(retracted_at__isnull=False).count() == 2
    alice_viewer = Viewer.for_member(alice.member)
    viewers = [Viewer.for_member(a.member) for a in (alice, bob, charlie, homeoffice)]
    viewers += [alice_viewer.within(trusted_group.pk), alice_viewer.within(None)]

    for viewer in viewers:
        live: dict[int, list[str]] = {}
        for hash_id, statement_id in Corroboration.objects.filter(
                viewer.statement_q("statement__"), retracted_at__isnull=True, hash_id__in=candidates,
        ).order_by("id").values_list("hash_id", "statement_id"):
            live.setdefault(hash_id, []).append(str(statement_id))
        matched = MatchedHashes.read(viewer, candidates)

        assert matched.live == live, viewer
        assert set(matched.rows) == set(live)
        said = {key for keys in live.values() for key in keys}
        expected = {key: replace(fact, incident_id=None) for key, fact in statement_facts(said, viewer).items()}
        assert matched.facts == expected, viewer
    assert len(MatchedHashes.read(viewers[2], candidates).rows) == 3  # charlie: md5(1), md5(2) and its own md5(5)
    assert len(MatchedHashes.read(viewers[4], candidates).facts) == 1  # alice within trusted: one statement
