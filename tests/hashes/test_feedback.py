"""Feedback statements (DESIGN.md, "Feedback, disputes and corrections"): alice submits, bob and
charlie give verdicts; bob and alice share the "trusted" group where a fixture asks for it."""

from __future__ import annotations

import pytest

from hashes.models import Dispute, Feedback, Hash, Statement
from tests.factories import md5, pdq


def state_of(actor, statement: str) -> Statement:
    return Statement.objects.get(member=actor.member, raw=statement)


def last_hash_view(actor) -> dict:
    return actor.feed()["events"][-1]["hash"]


def test_verdicts_are_counted_by_distinct_members_and_a_newer_verdict_replaces_the_older(
        alice, bob, charlie, homeoffice, pipeline):
    alice.submit(alice.statement([md5(1)]))
    pipeline()
    bob.submit(bob.feedback(md5(1), "seen"))
    pipeline()
    charlie.submit(charlie.feedback(md5(1), "agree"), charlie.feedback(md5(1), "seen"))
    pipeline()

    assert last_hash_view(homeoffice)["feedback"] == {"agree": 0, "disagree": 0, "seen": 2}
    hash_id = Hash.objects.get().pk
    detail = homeoffice.api.get(f"/api/v1/hashes/{hash_id}/").json()
    assert detail["feedback"] == {"agree": 0, "disagree": 0, "seen": 2} and detail["dispute"] is None
    assert Feedback.objects.filter(ended_at__isnull=True).count() == 2
    types = [e["type"] for e in homeoffice.feed()["events"]]
    assert types == ["hash.added", "hash.updated", "hash.updated", "hash.updated"]


def test_a_disagree_from_a_non_submitter_opens_a_dispute_seen_on_every_way_out(alice, bob, charlie, pipeline):
    alice.submit(alice.statement([md5(1)]))
    pipeline()
    bob.submit(bob.feedback(md5(1), "disagree", reasons=["newsworthy"]))
    pipeline()

    dispute = Dispute.objects.get()
    assert (dispute.state, dispute.reasons, dispute.member_id) == ("open", ["newsworthy"], bob.member.pk)
    for reader in (alice, bob, charlie):
        event = reader.feed()["events"][-1]
        assert event["type"] == "hash.updated"
        assert event["hash"]["dispute"]["state"] == "open"
        assert event["hash"]["dispute"]["reasons"] == ["newsworthy"]
        assert event["hash"]["feedback"]["disagree"] == 1
        assert event["cause"]["kind"] == "feedback" and event["cause"]["member"] == "bob"
    match = charlie.api.post("/api/v1/match/", {"signals": [md5(1)]}, format="json").json()
    assert match["results"][0]["matches"][0]["hash"]["dispute"]["state"] == "open"
    held = charlie.api.post("/api/v1/match/", {"signals": [md5(1)], "exclude_disputed": True}, format="json").json()
    assert held["results"][0]["matches"] == []
    listed = charlie.api.get("/api/v1/disputes/").json()
    assert [d["id"] for d in listed["disputes"]] == [dispute.pk]


@pytest.mark.parametrize("build, code", [
    (lambda a: a.feedback(md5(9), "agree"), "target_not_found"),
    (lambda a: a.feedback(md5(1), "disagree"), "reasons_required"),
    (lambda a: a.feedback(md5(1), "disagree", reasons=["boring"]), "reason_unknown"),
    (lambda a: a.feedback(md5(1), "agree", reasons=["newsworthy"]), "reasons_invalid"),
    (lambda a: a.feedback(md5(1), "meh"), "verdict_invalid"),
    (lambda a: a.feedback(md5(1), "seen", labels=["nope"]), "label_unknown"),
    (lambda a: a.feedback(md5(1), "seen", share="nowhere"), "share_not_allowed"),
    (lambda a: a.signer.sign({**__import__("json").loads('{}'), "iss": a.slug, "iat": 1, "jti": "x1",
                              "kind": "feedback", "target": {"type": "md5"}, "verdict": "seen"}), "target_invalid"),
])
def test_bad_feedback_is_rejected_with_its_code_and_changes_nothing(alice, bob, pipeline, build, code):
    alice.submit(alice.statement([md5(1)]))
    pipeline()
    before = bob.feed()
    statement = build(bob)
    bob.submit(statement)
    pipeline()
    assert state_of(bob, statement).rejection_code == code
    assert bob.feed() == before and not Feedback.objects.exists() and not Dispute.objects.exists()


def test_a_target_held_only_by_a_group_is_not_found_exactly_as_an_unknown_one(
        alice, bob, charlie, trusted_group, pipeline):
    alice.submit(alice.statement([md5(1)], share="trusted"))
    pipeline()
    hidden, unknown = charlie.feedback(md5(1), "agree"), charlie.feedback(md5(2), "agree")
    charlie.submit(hidden, unknown)
    pipeline()
    for statement in (hidden, unknown):
        got = state_of(charlie, statement)
        assert (got.state, got.rejection_code) == ("rejected", "target_not_found")
    assert state_of(charlie, hidden).rejection_message == state_of(charlie, unknown).rejection_message


def test_duplicate_and_own_hash_verdicts_are_refused(alice, bob, pipeline):
    alice.submit(alice.statement([md5(1)]))
    pipeline()
    first, again = bob.feedback(md5(1), "seen"), bob.feedback(md5(1), "seen")
    own = alice.feedback(md5(1), "agree")
    bob.submit(first)
    pipeline()
    bob.submit(again)
    alice.submit(own)
    pipeline()
    assert state_of(bob, first).state == "published"
    assert state_of(bob, again).rejection_code == "feedback_duplicate"
    assert state_of(alice, own).rejection_code == "feedback_on_own_hash"


def test_a_submitters_agree_answers_an_open_dispute_and_is_not_a_vote(alice, bob, charlie, pipeline):
    alice.submit(alice.statement([md5(1)]))
    pipeline()
    bob.submit(bob.feedback(md5(1), "disagree", reasons=["counter_speech"]))
    pipeline()
    answer = alice.feedback(md5(1), "agree", note="This is the attacker's own recording.")
    alice.submit(answer)
    pipeline()
    assert state_of(alice, answer).state == "published"
    assert Feedback.objects.get(statement__raw=answer).is_answer
    event = charlie.feed()["events"][-1]
    assert event["hash"]["feedback"] == {"agree": 0, "disagree": 1, "seen": 0}
    assert event["cause"]["member"] == "alice" and event["cause"]["kind"] == "feedback"


def test_retracting_feedback_withdraws_the_verdict(alice, bob, charlie, pipeline):
    alice.submit(alice.statement([md5(1)]))
    pipeline()
    verdict = bob.feedback(md5(1), "seen")
    bob.submit(verdict)
    pipeline()
    jti = Statement.objects.get(raw=verdict).jti
    bob.submit(bob.retraction(jti, reason="clicked the wrong button"))
    pipeline()
    assert last_hash_view(charlie)["feedback"] == {"agree": 0, "disagree": 0, "seen": 0}
    assert charlie.feed()["events"][-1]["type"] == "hash.updated"
    assert not Feedback.objects.filter(ended_at__isnull=True).exists()


def test_group_only_feedback_and_its_dispute_are_invisible_outside_the_group(
        alice, bob, charlie, homeoffice, trusted_group, pipeline):
    homeoffice.submit(homeoffice.statement([pdq(1)]))
    pipeline()
    before = charlie.feed()
    bob.submit(bob.feedback(pdq(1), "disagree", reasons=["newsworthy"], share="trusted"))
    pipeline()

    assert charlie.feed()["events"] == before["events"]  # not a byte more (the seq moved on: a gap)
    hash_id = Hash.objects.get().pk
    detail = charlie.api.get(f"/api/v1/hashes/{hash_id}/").json()
    assert detail["dispute"] is None and detail["feedback"]["disagree"] == 0
    assert charlie.api.get("/api/v1/disputes/").json()["disputes"] == []
    assert alice.feed()["events"][-1]["hash"]["dispute"]["state"] == "open"
    # An outsider's own disagree opens a dispute of its own, as if the group's did not exist.
    charlie.submit(charlie.feedback(pdq(1), "disagree", reasons=["low_quality"]))
    pipeline()
    assert Dispute.objects.filter(state="open").count() == 2
    assert charlie.feed()["events"][-1]["hash"]["dispute"]["reasons"] == ["low_quality"]


def test_feedback_on_a_retracted_hash_is_not_found_and_a_suspended_member_opens_no_dispute(alice, bob, pipeline):
    alice.submit(alice.statement([md5(1)], jti="a1"), alice.statement([md5(2)]))
    pipeline()
    alice.submit(alice.retraction("a1"))
    pipeline()
    late = bob.feedback(md5(1), "disagree", reasons=["other"])
    bob.submit(late)
    pipeline()
    assert state_of(bob, late).rejection_code == "target_not_found"
    suspended = bob.feedback(md5(2), "disagree", reasons=["other"])
    bob.submit(suspended)
    from members.services import member_set_status
    member_set_status(member=bob.member, status="suspended")
    pipeline()
    assert state_of(bob, suspended).rejection_code == "member_suspended"
    assert not Dispute.objects.exists() and not Feedback.objects.exists()


def test_the_admin_hash_page_shows_verdicts_and_disputes(alice, bob, charlie, pipeline, admin_client):
    alice.submit(alice.statement([md5(1)]))
    pipeline()
    bob.submit(bob.feedback(md5(1), "disagree", reasons=["newsworthy"]))
    charlie.submit(charlie.feedback(md5(1), "seen"))
    pipeline()
    page = admin_client.get(f"/admin/hashes/hash/{Hash.objects.get().pk}/change/").content.decode()
    assert "agree: 0, disagree: 1, seen: 1" in page
    assert f"#{Dispute.objects.get().pk} open" in page


def test_a_members_own_feedback_statement_shows_what_it_says(alice, bob, pipeline):
    alice.submit(alice.statement([md5(1)]))
    pipeline()
    accepted = bob.submit(bob.feedback(md5(1), "disagree", reasons=["newsworthy", "counter_speech"]))["accepted"][0]
    pipeline()
    shown = bob.api.get(f"/api/v1/statements/{accepted['id']}/").json()
    assert (shown["kind"], shown["state"], shown["verdict"]) == ("feedback", "published", "disagree")
    assert shown["target"] == {"type": "md5", "value": md5(1)["value"]}
    assert shown["reasons"] == ["counter_speech", "newsworthy"]


def test_a_video_is_targeted_by_the_value_every_hash_view_carries(alice, bob, pipeline):
    from tests.factories import vpdq

    alice.submit(alice.statement([vpdq(1, 2, 3)], content_type="video"))
    pipeline()
    seen = bob.feed()["events"][-1]["hash"]
    assert seen["signal_type"] == "vpdq" and len(seen["value"]) == 64 and len(seen["frames"]) == 3
    bob.submit(bob.feedback({"type": "vpdq", "value": seen["value"]}, "seen"))
    pipeline()
    assert bob.feed()["events"][-1]["hash"]["feedback"]["seen"] == 1
