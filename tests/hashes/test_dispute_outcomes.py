"""An administrator's outcome of a dispute is the consortium's decision: everyone who sees the hash
sees it (labels replaced, or the hash retracted), on every way out alike. The dispute and what opened
it (the feedback, its member, its reasons, the administrator's words) stay within the feedback's
audience. Proved on a dispute only the "trusted" group may see, with charlie outside the group:
differentially (what charlie reads is the same whoever in the group disputed, for what reasons, and
whatever the administrator wrote) and directly (charlie's feed, webhooks, TAXII, hash detail and
match agree with each other, and hold nothing of the group's dispute)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from distribution import rendering
from hashes.models import Dispute, Event, Hash, Statement
from hashes.services.disputes import REVIEWED, dispute_resolve
from hashes.visibility import Viewer
from taxii import stix
from tests.factories import md5
from tests.hashes.test_non_interference import IAT, normalise, observe, reset
from tests.taxii.conftest import all_pages, indicators, objects_path
from tests.taxii.test_visibility import normalise as normalise_taxii

# Two ways the group may dispute the same hash: who, why, with what words, and what the
# administrator wrote back. Nothing of either may reach charlie.
HIDDEN = {
    "bob": {"reasons": ["wrong_label"], "note": "bob thinks this is satire", "resolution": "Satire, per the trusted group"},
    "alice": {"reasons": ["newsworthy", "counter_speech"], "note": "alice saw it in the news",
              "resolution": "Reported by news outlets, as alice showed"},
}


def secrets(case: dict[str, Any]) -> set[str]:
    return {*case["reasons"], case["note"], case["resolution"], "trusted", "Trusted", "alice", "bob"}


def scenario(actors: dict[str, Any], pipeline, outcome: str, disputer: str) -> Dispute:
    """The Home Office shares two MD5s consortium-wide; one member of the group disputes the first
    within the group (the other gives a verdict there too), and an administrator resolves it."""
    homeoffice = actors["homeoffice"]
    homeoffice.submit(homeoffice.statement([md5(1)], labels=["recruitment"], jti="h1", iat=IAT),
                      homeoffice.statement([md5(2)], labels=["recruitment"], jti="h2", iat=IAT))
    pipeline()
    case, other = HIDDEN[disputer], actors["alice" if disputer == "bob" else "bob"]
    actors[disputer].submit(actors[disputer].feedback(md5(1), "disagree", reasons=case["reasons"], note=case["note"],
                                                      share="trusted", jti="gf1", iat=IAT))
    other.submit(other.feedback(md5(1), "seen", share="trusted", jti="gf2", iat=IAT))
    pipeline()
    dispute = Dispute.objects.get()
    assert dispute.share_group.slug == "trusted" and dispute.member.slug == disputer
    dispute_resolve(dispute_id=dispute.pk, outcome=outcome, resolution=case["resolution"], labels=["glorification"])
    return Dispute.objects.get(pk=dispute.pk)


def taxii(charlie) -> list[dict[str, Any]]:
    """Every version of every indicator of the consortium's TAXII collection."""
    objects, _ = all_pages(charlie, objects_path(stix.collection_id(None)), **{"match[version]": "all"}, limit=1000)
    return objects


def last_of(events: list[dict[str, Any]], value: str) -> dict[str, Any]:
    return [e for e in events if e["hash"]["value"] == value][-1]


@pytest.mark.parametrize("outcome", ["relabelled", "removed"])
def test_a_groups_dispute_outcome_reaches_an_outsider_as_the_consortiums_decision_alone(
        outcome, alice, bob, charlie, homeoffice, trusted_group, pipeline):
    actors = {"alice": alice, "bob": bob, "charlie": charlie, "homeoffice": homeoffice}
    seen: dict[str, Any] = {}
    for disputer in HIDDEN:
        scenario(actors, pipeline, outcome, disputer)
        seen[disputer] = {**observe(charlie), "taxii": taxii(charlie)}
        if disputer != list(HIDDEN)[-1]:
            reset()

    # Whoever disputed, however, and whatever the administrator wrote: charlie reads the same.
    assert normalise({k: v for k, v in seen["alice"].items() if k != "taxii"}) == normalise(
        {k: v for k, v in seen["bob"].items() if k != "taxii"})
    assert normalise_taxii(seen["alice"]["taxii"]) == normalise_taxii(seen["bob"]["taxii"])

    view = seen["alice"]
    disputed, control = md5(1)["value"], md5(2)["value"]
    hash_id = Hash.objects.get(value=disputed).pk
    # The feed and the webhooks are one log, event for event; the outcome is its own event.
    assert view["webhook"]["events"] == view["feed"]
    event = last_of(view["feed"], disputed)
    assert [e["type"] for e in view["feed"] if e["hash"]["value"] == disputed] == ["hash.added", event["type"]]
    assert event["hash"]["dispute"] is None and event["hash"]["feedback"] == {"agree": 0, "disagree": 0, "seen": 0}
    detail = view["details"][hash_id]
    matched = {m["hash"]["value"]: m["hash"] for r in view["match"]["results"] for m in r["matches"]}
    latest = {}
    for obj in indicators(view["taxii"]):
        latest[obj["name"]] = obj  # versions come oldest first
    indicator = latest[f"MD5 {disputed}"]
    assert detail["dispute"] is None and view["disputes"]["disputes"] == []
    if outcome == "relabelled":
        assert event["type"] == "hash.updated" and "cause" not in event  # no cause charlie may see
        assert event["hash"]["labels"] == detail["labels"] == matched[disputed]["labels"] == ["glorification"]
        assert indicator["labels"] == ["glorification"] and not indicator.get("revoked")
        # A subscription that asks for the new label receives the relabelling (and the hash's later events).
        rendering.clear_caches()
        head = Event.objects.order_by("-seq").values_list("seq", flat=True).first()
        wanted = rendering.Filters(labels=frozenset({"glorification"}))
        batch = rendering.range_batch(Viewer.for_member(charlie.member), wanted, after=0, through=head)
        assert [(e.type, json.loads(e.fragment)["hash"]["labels"]) for e in batch.events] == [
            ("hash.updated", ["glorification"])]
    else:
        assert event["type"] == "hash.retracted" and detail["state"] == "retracted" and disputed not in matched
        assert indicator.get("revoked") is True
        # The server's removal statement: signed, consortium-wide, and in neutral words.
        assert event["cause"]["member"] == "consortium-server"
        assert event["cause"]["statement"] == {"iss": "consortium-server", "kind": "retract", "reason": REVIEWED,
                                               "target": {"type": "md5", "value": disputed}}
    assert matched[control]["labels"] == ["recruitment"]  # the other hash is untouched

    # Directly: nothing of the group's dispute in anything charlie read.
    for disputer, case in HIDDEN.items():
        text = json.dumps(seen[disputer])
        assert not {secret for secret in secrets(case) if secret in text}, disputer


def test_the_group_sees_its_dispute_and_the_administrators_words(alice, bob, charlie, homeoffice, trusted_group,
                                                                 pipeline):
    dispute = scenario({"alice": alice, "bob": bob, "charlie": charlie, "homeoffice": homeoffice}, pipeline,
                       "removed", "bob")
    removal = Statement.objects.get(pk=dispute.removal_id)
    assert removal.retract_reason == REVIEWED and HIDDEN["bob"]["resolution"] not in removal.raw
    for member in (alice, bob):
        event = last_of(member.feed()["events"], md5(1)["value"])
        assert event["type"] == "hash.retracted"
        assert event["hash"]["dispute"]["state"] == "removed"
        assert event["hash"]["dispute"]["resolution"] == HIDDEN["bob"]["resolution"]
        assert [d["resolution"] for d in member.api.get("/api/v1/disputes/").json()["disputes"]] == [
            HIDDEN["bob"]["resolution"]]


def test_a_removal_counts_no_dispute_an_outsider_may_not_see(alice, bob, charlie, homeoffice, trusted_group, pipeline):
    """charlie's own dispute is resolved `removed` while the group's is open on the same hash: charlie
    reads the same as when the group has none (one retraction, not one per closed dispute)."""
    actors = {"alice": alice, "bob": bob, "charlie": charlie, "homeoffice": homeoffice}
    seen = {}
    for hidden in (False, True):
        homeoffice.submit(homeoffice.statement([md5(1)], labels=["recruitment"], jti="h1", iat=IAT))
        pipeline()
        charlie.submit(charlie.feedback(md5(1), "disagree", reasons=["not_tvec"], jti="cf1", iat=IAT))
        if hidden:
            bob.submit(bob.feedback(md5(1), "disagree", reasons=["wrong_label"], share="trusted", jti="gf1", iat=IAT))
        pipeline()
        mine = Dispute.objects.get(member=charlie.member)
        dispute_resolve(dispute_id=mine.pk, outcome="removed", resolution="Not terrorist content.")
        seen[hidden] = observe(charlie)
        if not hidden:
            reset()
    assert Dispute.objects.get(member=bob.member).state == "removed"
    assert normalise(seen[True]) == normalise(seen[False])
    assert [e["type"] for e in seen[True]["feed"]] == ["hash.added", "hash.updated", "hash.retracted"]
    assert seen[True]["feed"][-1]["hash"]["dispute"]["resolution"] == "Not terrorist content."
    assert Event.objects.filter(type="hash.retracted").count() == 1


def test_a_groups_removal_closes_an_outsiders_dispute_without_the_groups_words(
        alice, bob, charlie, homeoffice, trusted_group, pipeline):
    homeoffice.submit(homeoffice.statement([md5(1)], labels=["recruitment"]))
    pipeline()
    charlie.submit(charlie.feedback(md5(1), "disagree", reasons=["not_tvec"]))
    bob.submit(bob.feedback(md5(1), "disagree", reasons=["wrong_label"], share="trusted"))
    pipeline()
    groups = Dispute.objects.get(member=bob.member)
    dispute_resolve(dispute_id=groups.pk, outcome="removed", resolution="Satire, per the trusted group")
    assert Dispute.objects.get(member=charlie.member).resolution == REVIEWED
    feed = charlie.feed()["events"]
    assert [e["type"] for e in feed] == ["hash.added", "hash.updated", "hash.retracted"]
    assert feed[-1]["hash"]["dispute"]["state"] == "removed" and feed[-1]["hash"]["dispute"]["resolution"] == REVIEWED
    everything = json.dumps([feed, charlie.api.get("/api/v1/disputes/").json()])
    assert "Satire" not in everything and "wrong_label" not in everything and "bob" not in everything
