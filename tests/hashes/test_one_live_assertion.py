"""One live assertion per member, hash and audience: a member's newer statement of a hash it already
corroborates, with the same share, supersedes the earlier one in the same event, so no member can
make every event of a hash grow with how often it repeats a value (a security review's finding:
2,000 repeats of one MD5 made a 168 MB event table)."""

from __future__ import annotations

from hashes.models import Corroboration, Event, Hash, Statement
from tests.factories import BASE_PDQ, flip, md5, pdq_value, vpdq


def live(hash_id: int) -> list[str]:
    return [str(s) for s in Corroboration.objects.filter(hash_id=hash_id, retracted_at__isnull=True)
            .order_by("id").values_list("statement__jti", flat=True)]


def test_fifty_repeats_leave_one_live_corroboration_and_small_events(alice, bob, pipeline):
    bob.submit(bob.statement([md5(1)], jti="b1"))
    pipeline()
    before = bob.feed()["events"]
    alice.submit(*[alice.statement([md5(1)], jti=f"a{n}") for n in range(25)])
    pipeline()
    alice.submit(*[alice.statement([md5(1)], jti=f"a{n}") for n in range(25, 50)])  # one batch each
    pipeline()

    hash_id = Hash.objects.get().pk
    assert live(hash_id) == ["b1", "a49"]
    # Every event names at most bob's statement and alice's latest two (the one replaced, the new one).
    assert max(len(e.statements_before) + len(e.statements_after) for e in Event.objects.all()) <= 4
    assert Corroboration.objects.filter(superseded_by__isnull=False).count() == 49
    # What others see: two members, two statements, no statement omitted.
    view = bob.feed()["events"][-1]["hash"]
    assert (view["corroboration_count"], len(view["statements"]), view["statements_omitted"]) == (2, 2, 0)
    assert bob.feed()["events"][:len(before)] == before
    detail = bob.api.get(f"/api/v1/hashes/{hash_id}/").json()
    assert len(detail["corroborations"]) == 51 and detail["corroborations_omitted"] == 0


def test_the_replacing_statement_ends_the_earlier_one_in_one_event(alice, charlie, pipeline):
    alice.submit(alice.statement([md5(1)], jti="a1", labels=["glorification"]))
    pipeline()
    seq = Event.objects.order_by("seq").last().seq
    alice.submit(alice.statement([md5(1)], jti="a2", labels=["recruitment"]))
    pipeline()

    [event] = Event.objects.filter(seq__gt=seq)
    a1, a2 = (str(Statement.objects.get(jti=j).pk) for j in ("a1", "a2"))
    assert (event.type, event.statements_before, event.statements_after) == ("hash.updated", [a1], [a2])
    view = charlie.feed()["events"][-1]
    assert view["type"] == "hash.updated" and view["hash"]["labels"] == ["recruitment"]
    assert view["cause"] == {"member": "alice", "kind": "hash", "jti": "a2"}
    old = Corroboration.objects.get(statement_id=a1)
    assert str(old.superseded_by_id) == a2 and old.retracted_at is not None


def test_repeats_within_one_batch_leave_the_last_live(alice, pipeline):
    alice.submit(*[alice.statement([md5(1)], jti=f"a{n}") for n in range(5)])
    pipeline()
    assert live(Hash.objects.get().pk) == ["a4"]
    rows = dict(Corroboration.objects.values_list("statement__jti", "superseded_by__jti"))
    assert rows == {"a0": "a1", "a1": "a2", "a2": "a3", "a3": "a4", "a4": None}
    assert [(len(e.statements_before), len(e.statements_after)) for e in Event.objects.all()] == [(0, 1)] + [(1, 1)] * 4


def test_another_share_is_another_assertion(alice, bob, trusted_group, pipeline):
    alice.submit(alice.statement([md5(1)], jti="a1"))
    pipeline()
    alice.submit(alice.statement([md5(1)], jti="a2", share="trusted"), alice.statement([md5(1)], jti="a3"),
                 alice.statement([md5(1)], jti="a4", share="trusted"))
    pipeline()
    hash_id = Hash.objects.get().pk
    assert live(hash_id) == ["a3", "a4"]  # one consortium-wide, one group-only, side by side
    assert dict(Corroboration.objects.filter(superseded_by__isnull=False)
                .values_list("statement__jti", "superseded_by__jti")) == {"a1": "a3", "a2": "a4"}


def test_a_near_duplicate_pdq_supersedes_on_the_hash_it_lands_on(alice, pipeline):
    alice.submit(alice.statement([pdq_value(BASE_PDQ)], jti="a1"))
    pipeline()
    alice.submit(alice.statement([pdq_value(flip(BASE_PDQ, range(4)))], jti="a2"))
    pipeline()
    hash_ = Hash.objects.get()
    assert live(hash_.pk) == ["a2"]
    assert Corroboration.objects.get(statement__jti="a2").distance == 4


def test_a_duplicate_video_supersedes(alice, pipeline):
    alice.submit(alice.statement([vpdq(*range(1, 11))], jti="a1", content_type="video"))
    pipeline()
    alice.submit(alice.statement([vpdq(*range(1, 11))], jti="a2", content_type="video"))
    pipeline()
    assert live(Hash.objects.get().pk) == ["a2"]


def test_retracting_a_superseded_statement_is_refused_and_leaves_the_newer(alice, bob, pipeline):
    alice.submit(alice.statement([md5(1)], jti="a1"))
    pipeline()
    alice.submit(alice.statement([md5(1)], jti="a2"))
    pipeline()
    seq = Event.objects.order_by("seq").last().seq
    answer = alice.submit(alice.retraction("a1"))
    pipeline()

    retraction = alice.api.get(f"/api/v1/statements/{answer['accepted'][0]['id']}/").json()
    assert (retraction["state"], retraction["rejection_code"]) == ("rejected", "statement_superseded")
    assert not Event.objects.filter(seq__gt=seq).exists()
    assert live(Hash.objects.get().pk) == ["a2"]
    assert Statement.objects.get(jti="a1").retracted_at is None
    # The auditor's record: which statement replaced it, where, and when.
    a1 = Statement.objects.get(jti="a1")
    shown = alice.api.get(f"/api/v1/statements/{a1.pk}/").json()
    assert [(s["hash"], s["by"]) for s in shown["superseded"]] == [
        (Hash.objects.get().pk, str(Statement.objects.get(jti="a2").pk))]
    listed = {s["jti"]: s["superseded"] for s in alice.api.get("/api/v1/statements/").json()["results"]}
    assert listed["a2"] == [] and len(listed["a1"]) == 1
    # Retracting the newer one withdraws alice's assertion.
    alice.submit(alice.retraction("a2"))
    pipeline()
    assert live(Hash.objects.get().pk) == [] and Hash.objects.get().state == "retracted"


def test_a_retraction_after_its_target_was_superseded_in_the_same_batch(alice, pipeline):
    alice.submit(alice.statement([md5(1)], jti="a1"))
    pipeline()
    answer = alice.submit(alice.statement([md5(1)], jti="a2"), alice.retraction("a1"))
    pipeline()
    assert Statement.objects.get(pk=answer["accepted"][1]["id"]).rejection_code == "statement_superseded"
    assert live(Hash.objects.get().pk) == ["a2"]


def test_a_partly_superseded_statement_retracts_what_it_still_asserts(alice, pipeline):
    alice.submit(alice.statement([md5(1), md5(2)], jti="a1"))
    pipeline()
    alice.submit(alice.statement([md5(1)], jti="a2"))
    pipeline()
    alice.submit(alice.retraction("a1"))
    pipeline()
    hashes = {h.value: h for h in Hash.objects.all()}
    assert live(hashes[md5(1)["value"]].pk) == ["a2"]
    assert live(hashes[md5(2)["value"]].pk) == [] and hashes[md5(2)["value"]].state == "retracted"
    assert Statement.objects.get(jti="a1").retracted_at is not None


def test_hash_detail_lists_the_newest_corroborations_and_counts_the_rest(alice, bob, pipeline, monkeypatch):
    from hashes import selectors

    monkeypatch.setattr(selectors, "HASH_DETAIL_MAX_CORROBORATIONS", 3)
    alice.submit(*[alice.statement([md5(1)], jti=f"a{n}") for n in range(5)])
    pipeline()
    detail = bob.api.get(f"/api/v1/hashes/{Hash.objects.get().pk}/").json()
    jtis = {str(pk): jti for pk, jti in Statement.objects.values_list("pk", "jti")}
    listed = [(jtis[c["statement_id"]], c["superseded_by"] is not None)
              for c in detail["corroborations"]]
    assert listed == [("a2", True), ("a3", True), ("a4", False)]
    assert detail["corroborations_omitted"] == 2
