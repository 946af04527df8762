"""Variant families: near duplicates corroborate, close variants join a cluster, a linking hash
merges clusters, and only hashes the submitter can see take part."""

from __future__ import annotations

from hashes.models import Corroboration, Hash, HashLink
from tests.factories import BASE_PDQ, flip, pdq_value, vpdq

FAR = flip(BASE_PDQ, range(0, 128))  # 128 bits away: unrelated content


def test_a_pdq_within_the_dedupe_distance_corroborates_the_visible_hash(alice, bob, pipeline):
    alice.submit(alice.statement([pdq_value(BASE_PDQ)]))
    pipeline()
    bob.submit(bob.statement([pdq_value(flip(BASE_PDQ, range(8)))]))
    pipeline()

    original = Hash.objects.get()
    assert original.value == BASE_PDQ
    assert sorted(Corroboration.objects.values_list("distance", flat=True)) == [0, 8]
    event = bob.feed()["events"][-1]
    assert event["type"] == "hash.updated"
    assert [s["member"] for s in event["hash"]["submitters"]] == ["alice", "bob"]
    detail = bob.api.get(f"/api/v1/hashes/{original.pk}/").json()
    assert [(c["member"], c["distance"]) for c in detail["corroborations"]] == [("alice", 0), ("bob", 8)]


def test_a_pdq_within_the_match_distance_joins_the_cluster_as_a_new_hash(alice, bob, pipeline):
    alice.submit(alice.statement([pdq_value(BASE_PDQ)]))
    pipeline()
    variant = flip(BASE_PDQ, range(20))
    bob.submit(bob.statement([pdq_value(variant)]))
    pipeline()

    original, new = Hash.objects.order_by("pk")
    assert new.value == variant and new.cluster_id == original.cluster_id
    event = alice.feed()["events"][-1]
    assert event["type"] == "hash.added"
    assert event["hash"]["cluster"] == original.cluster_id
    assert event["hash"]["links"] == [{"hash": original.pk, "distance": 20}]
    assert alice.api.get(f"/api/v1/hashes/{new.pk}/").json()["links"] == [{"hash": original.pk, "distance": 20}]


def test_a_pdq_beyond_the_match_distance_starts_its_own_family(alice, pipeline):
    alice.submit(alice.statement([pdq_value(BASE_PDQ)]), alice.statement([pdq_value(flip(BASE_PDQ, range(32)))]))
    pipeline()

    assert Hash.objects.values("cluster").distinct().count() == 2
    assert HashLink.objects.count() == 0


def test_a_hash_that_links_two_families_merges_them_with_events(alice, bob, pipeline):
    left, right = BASE_PDQ, flip(BASE_PDQ, range(40))  # 40 bits apart: two families
    alice.submit(alice.statement([pdq_value(left)]), alice.statement([pdq_value(right)]))
    pipeline()
    older, younger = Hash.objects.order_by("pk")
    bridge = flip(BASE_PDQ, range(20))  # 20 bits from each
    bob.submit(bob.statement([pdq_value(bridge)]))
    pipeline()

    assert Hash.objects.values("cluster").distinct().count() == 1
    assert Hash.objects.get(value=bridge).cluster_id == older.cluster_id
    events = alice.feed()["events"]
    added, moved = events[-2], events[-1]
    assert added["type"] == "hash.added" and added["hash"]["value"] == bridge
    assert sorted(link["hash"] for link in added["hash"]["links"]) == [older.pk, younger.pk]
    assert moved["type"] == "hash.updated" and moved["hash"]["id"] == younger.pk
    assert (moved["hash"]["previous_cluster"], moved["hash"]["cluster"]) == (younger.cluster_id, older.cluster_id)


def test_only_hashes_the_submitter_can_see_take_part(alice, bob, charlie, trusted_group, pipeline):
    alice.submit(alice.statement([pdq_value(BASE_PDQ)], share="trusted"))
    pipeline()
    charlie.submit(charlie.statement([pdq_value(flip(BASE_PDQ, range(4)))]))
    pipeline()

    group_hash, charlies = Hash.objects.order_by("pk")
    assert charlies.value != group_hash.value and charlies.cluster_id != group_hash.cluster_id
    assert HashLink.objects.count() == 0
    assert [e["hash"]["value"] for e in charlie.feed()["events"]] == [charlies.value]
    # bob, inside the group, 2 bits from the group's hash (6 from charlie's): shared with the
    # consortium, his statement meets only consortium hashes and corroborates charlie's; shared with
    # the group, it corroborates the group's.
    bob.submit(bob.statement([pdq_value(flip(BASE_PDQ, [200, 201]))]))
    bob.submit(bob.statement([pdq_value(flip(BASE_PDQ, [202, 203]))], share="trusted"))
    pipeline()
    assert (group_hash.corroborations.count(), charlies.corroborations.count()) == (2, 2)
    assert Hash.objects.count() == 2


def test_variants_within_one_batch_form_one_family(alice, pipeline):
    alice.submit(*[alice.statement([pdq_value(flip(BASE_PDQ, range(n * 10)))]) for n in range(4)])
    alice.submit(alice.statement([pdq_value(FAR)]))
    pipeline()

    clusters = dict(Hash.objects.values_list("value", "cluster"))
    assert len({clusters[flip(BASE_PDQ, range(n * 10))] for n in range(4)}) == 1
    assert clusters[FAR] != clusters[BASE_PDQ]
    assert Hash.objects.count() == 5


def test_a_retracted_hash_is_no_longer_a_dedupe_target(alice, bob, pipeline):
    alice.submit(alice.statement([pdq_value(BASE_PDQ)], jti="a1"))
    pipeline()
    alice.submit(alice.retraction("a1"))
    pipeline()
    bob.submit(bob.statement([pdq_value(flip(BASE_PDQ, range(3)))]))
    pipeline()

    assert Hash.objects.filter(state="active").get().value == flip(BASE_PDQ, range(3))


def frames(values: list[str], quality: int = 90) -> dict:
    return {"type": "vpdq", "frames": [{"i": i, "t": float(i), "pdq": v, "q": quality} for i, v in enumerate(values)]}


# Ten frames, each at least 80 bits from every other: no frame matches another by accident.
VIDEO = [flip(BASE_PDQ, range(n * 64, n * 64 + 48)) for n in range(4)] + [flip(FAR, range(n * 40, n * 40 + 40)) for n in range(6)]


def test_a_video_matching_on_both_percentages_corroborates(alice, bob, pipeline):
    alice.submit(alice.statement([frames(VIDEO)], content_type="video"))
    pipeline()
    reencoded = [flip(v, [200, 201]) for v in VIDEO]  # every frame 2 bits off
    bob.submit(bob.statement([frames(reencoded)], content_type="video"))
    pipeline()

    video = Hash.objects.get()
    assert video.corroborations.count() == 2


def test_a_video_shorter_than_the_shared_frames_minimum_still_finds_its_duplicate(alice, bob, pipeline):
    short = VIDEO[:2]  # fewer frames than VPDQ_MIN_SHARED_FRAMES: all of them must be shared
    alice.submit(alice.statement([frames(short)], content_type="video"))
    pipeline()
    bob.submit(bob.statement([frames([flip(v, [200, 201]) for v in short])], content_type="video"))
    pipeline()

    assert Hash.objects.get().corroborations.count() == 2

def test_a_video_matching_on_one_percentage_joins_the_family_with_both_kept(alice, bob, pipeline):
    alice.submit(alice.statement([frames(VIDEO)], content_type="video"))
    pipeline()
    clip = VIDEO[:5]  # a cut: all its frames are in the original, half of the original's are in it
    bob.submit(bob.statement([frames(clip)], content_type="video"))
    pipeline()

    original, cut = Hash.objects.order_by("pk")
    assert cut.cluster_id == original.cluster_id
    link = bob.feed()["events"][-1]["hash"]["links"][0]
    assert link == {"hash": original.pk, "query_match_percent": 100.0, "stored_match_percent": 50.0}


def test_unrelated_videos_stay_apart(alice, pipeline):
    alice.submit(alice.statement([frames(VIDEO[:5])], content_type="video"),
                 alice.statement([vpdq(1, 2, 3)], content_type="video"))
    pipeline()

    assert Hash.objects.values("cluster").distinct().count() == 2
