"""No member can make what others read large, or publishing slow, by what it submits: unknown
payload fields are refused, a hash counts and carries one statement per member (and at most
HASH_MAX_STATEMENTS), the rest is paged, and a flood of long videos sharing a frame or two costs
publishing no comparisons."""

from __future__ import annotations

import hashlib

from consortium_client.statements import hash_statement, retract_statement
from hashes.models import Hash, Statement
from hashes.services import families
from tests.factories import BASE_PDQ, flip, md5


def test_a_statement_with_an_unknown_payload_field_is_refused_on_receipt(alice):
    padded = alice.signer.sign({**hash_statement(iss="alice", signals=[md5(1)], content_type="photo"),
                                "padding": "x" * 300_000})
    answer = alice.submit(padded, alice.statement([md5(2)]))
    assert [(r["index"], r["error"]["code"]) for r in answer["rejected"]] == [(0, "payload_field_unknown")]
    assert len(answer["accepted"]) == 1 and Statement.objects.count() == 1  # the padded one is not stored


def test_a_retraction_with_an_unknown_field_is_refused_too(alice):
    raw = alice.signer.sign({**retract_statement(iss="alice", retracts="a1", reason="x"), "why": "padding"})
    assert [r["error"]["code"] for r in alice.submit(raw)["rejected"]] == ["payload_field_unknown"]


def test_twenty_statements_of_one_member_are_one_corroboration_and_one_embedded_statement(alice, bob, pipeline):
    alice.submit(*[alice.statement([md5(1)]) for _ in range(20)])
    bob.submit(bob.statement([md5(1)]))
    pipeline()

    hash_ = bob.feed()["events"][-1]["hash"]
    assert hash_["corroboration_count"] == 2
    # alice's latest statement replaced each earlier one (one live assertion per member, hash and share).
    assert len(hash_["statements"]) == 2 and hash_["statements_omitted"] == 0
    detail = bob.api.get(f"/api/v1/hashes/{hash_['id']}/").json()
    assert detail["corroboration_count"] == 2 and len(detail["statements"]) == 2
    assert len(detail["corroborations"]) == 21  # the record still lists every statement
    assert sum(c["superseded_by"] is not None for c in detail["corroborations"]) == 19


def test_a_hash_carries_at_most_hash_max_statements_and_pages_the_rest(settings, alice, actor_factory, pipeline):
    settings.HASH_MAX_STATEMENTS = 3
    members = [actor_factory(f"m{n}") for n in range(5)]
    for member in members:
        member.submit(member.statement([md5(1)]))
    pipeline()

    events = alice.feed()["events"]
    assert all(len(e["hash"]["statements"]) <= 3 for e in events)
    last = events[-1]["hash"]
    assert (last["corroboration_count"], len(last["statements"]), last["statements_omitted"]) == (5, 3, 2)
    # The cause of an event whose statement is not carried comes with its JWS.
    assert "statement" in events[-1]["cause"]

    pages, offset = [], 0
    while offset is not None:
        page = alice.api.get(f"/api/v1/hashes/{last['id']}/statements/?offset={offset}&limit=2").json()
        pages.append(page["statements"])
        offset = page["next_offset"]
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [s["member"] for p in pages for s in p] == [f"m{n}" for n in range(5)]


def test_a_hash_carries_its_first_statement_even_past_the_byte_budget(settings, alice, bob, charlie, pipeline):
    settings.HASH_MAX_STATEMENT_BYTES = 1
    alice.submit(alice.statement([md5(1)]))
    bob.submit(bob.statement([md5(1)]))
    pipeline()
    hash_id = Hash.objects.get().pk

    matched = charlie.api.post("/api/v1/match/", {"signals": [md5(1)]}, format="json").json()["results"][0]
    views = [charlie.feed()["events"][-1]["hash"], charlie.api.get(f"/api/v1/hashes/{hash_id}/").json(),
             matched["matches"][0]["hash"]]

    assert [(len(v["statements"]), v["statements_omitted"], v["corroboration_count"]) for v in views] == [(1, 1, 2)] * 3

def test_the_statements_page_refuses_what_the_member_cannot_see(alice, bob, charlie, trusted_group, pipeline):
    alice.submit(alice.statement([md5(1)], share="trusted"))
    pipeline()
    hash_id = Hash.objects.get().pk

    assert bob.api.get(f"/api/v1/hashes/{hash_id}/statements/").status_code == 200
    response = charlie.api.get(f"/api/v1/hashes/{hash_id}/statements/")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")
    response = bob.api.get(f"/api/v1/hashes/{hash_id}/statements/?limit=1000")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "validation_error")


def test_a_statement_page_stops_at_the_byte_budget_but_holds_one(settings, alice, bob, pipeline):
    alice.submit(alice.statement([md5(1)]))
    bob.submit(bob.statement([md5(1)]))
    pipeline()
    settings.HASH_MAX_STATEMENT_BYTES = 10
    hash_id = Hash.objects.get().pk

    first = alice.api.get(f"/api/v1/hashes/{hash_id}/statements/").json()
    assert len(first["statements"]) == 1 and first["next_offset"] == 1
    second = alice.api.get(f"/api/v1/hashes/{hash_id}/statements/?offset=1").json()
    assert len(second["statements"]) == 1 and second["next_offset"] is None


def frame(*seed: object) -> str:
    """A frame hash unrelated to every other seed's (about 128 bits apart)."""
    return hashlib.sha256(repr(seed).encode()).hexdigest()


def video(shared: str, n: int, length: int = 40) -> dict:
    """A video of `length` frames, unrelated to every other n except for one shared frame."""
    frames = [{"i": 0, "t": 0.0, "pdq": shared, "q": 90}]
    frames += [{"i": i, "t": float(i), "pdq": frame(n, i), "q": 90} for i in range(1, length)]
    return {"type": "vpdq", "frames": frames}


def test_videos_sharing_only_a_frame_are_never_compared_under_the_feed_lock(alice, pipeline, monkeypatch):
    compared = []
    real = families.compare_rows
    monkeypatch.setattr(families, "compare_rows", lambda *a, **k: compared.append(1) or real(*a, **k))
    shared = flip(BASE_PDQ, range(100, 140))
    for n in range(6):
        alice.submit(alice.statement([video(shared, n)], content_type="video"))
        pipeline()

    assert Hash.objects.filter(signal_type="vpdq").count() == 6
    assert compared == []
    # A near duplicate (39 of 40 frames) is still compared, and corroborates.
    frames = [dict(f) for f in Hash.objects.filter(signal_type="vpdq").order_by("pk").first().frames]
    frames[-1]["pdq"] = frame("re-encoded")
    alice.submit(alice.statement([{"type": "vpdq", "frames": frames}], content_type="video"))
    pipeline()
    assert compared and Hash.objects.filter(signal_type="vpdq").count() == 6


def test_at_most_vpdq_max_candidates_videos_are_compared(settings, alice, pipeline, monkeypatch):
    settings.VPDQ_MAX_CANDIDATES = 2
    compared = []
    real = families.compare_rows
    monkeypatch.setattr(families, "compare_rows", lambda *a, **k: compared.append(1) or real(*a, **k))
    base = video(frame("base"), 0)["frames"]

    def variant(n: int) -> dict:  # 5 of 40 frames replaced: 87.5 % alike, a family member, not a duplicate
        frames = [dict(f) for f in base]
        for i in range(5 * n, 5 * n + 5):
            frames[i]["pdq"] = frame("variant", n, i)
        return {"type": "vpdq", "frames": frames}

    for n in range(4):
        alice.submit(alice.statement([variant(n)], content_type="video"))
        pipeline()
    assert Hash.objects.filter(signal_type="vpdq").count() == 4
    compared.clear()
    alice.submit(alice.statement([variant(4)], content_type="video"))
    pipeline()
    assert len(compared) == 2
    assert Hash.objects.filter(signal_type="vpdq").count() == 5


def test_a_flood_within_one_batch_is_not_compared_either(alice, pipeline, monkeypatch):
    compared = []
    real = families.compare_rows
    monkeypatch.setattr(families, "compare_rows", lambda *a, **k: compared.append(1) or real(*a, **k))
    alice.submit(*[alice.statement([video(frame("shared"), n)], content_type="video") for n in range(6)])
    base = video(frame("shared"), 0)["frames"]
    alice.submit(alice.statement([{"type": "vpdq", "frames": base[:-1] + [{**base[-1], "pdq": frame("other")}]}],
                                 content_type="video"))  # 39 of 40 frames: a duplicate of the first, same batch
    pipeline()

    assert len(compared) == 1  # only the duplicate, against the one video it shares 39 frames with
    assert Hash.objects.filter(signal_type="vpdq").count() == 6


def test_a_publishing_batch_holds_a_bounded_number_of_video_frames(settings, alice, pipeline):
    settings.PUBLISH_BATCH_MAX_FRAMES = 100
    alice.submit(*[alice.statement([video(frame("v", n), n)], content_type="video") for n in range(5)],
                 alice.statement([md5(1)]))
    pipeline()

    published = Statement.objects.values_list("published_at", flat=True)
    assert len(set(published)) == 3  # 40 frames each: two videos a batch (the md5 rides with the last)


def test_a_video_longer_than_a_whole_batch_is_still_published(settings, alice, pipeline):
    settings.PUBLISH_BATCH_MAX_FRAMES = 10
    alice.submit(alice.statement([video(frame("v", 0), 0)], content_type="video"))  # 40 frames

    pipeline()

    assert Statement.objects.get().state == "published"
