"""Adding an entry (one, or many at once) opens a dispute, reasons ["suppression_list"], on every live
hash it covers: the same value, or a PDQ within BENIGN_DISTANCE. The dispute is a `hash.updated` event
that every member who sees the hash sees, and nobody else; each one is audited. Adding the same
entries again opens nothing more."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from hashes.models import Dispute
from hashes.services.disputes import disputes_open
from suppression import services
from suppression.models import BenignEntry
from suppression.services import benign_entries_cover, benign_entries_set_active
from tests.factories import BASE_PDQ, flip, md5, pdq_value, sha256

NEAR = flip(BASE_PDQ, range(8))
FAR = flip(BASE_PDQ, range(100, 109))


def disputed() -> dict[str, list[str]]:
    return {d.hash.value: d.reasons for d in Dispute.objects.select_related("hash")}


def test_an_entry_disputes_every_live_hash_it_covers_and_no_other(alice, bob, pipeline, listing):
    alice.submit(alice.statement([pdq_value(NEAR)]), alice.statement([pdq_value(FAR)]), alice.statement([md5(7)]),
                 alice.statement([md5(8)], jti="retracted"), alice.statement([sha256(7)]))
    pipeline()
    alice.submit(alice.retraction("retracted"))
    pipeline()

    result = listing(("pdq", BASE_PDQ), ("md5", md5(7)["value"]), ("md5", md5(8)["value"]))

    assert disputed() == {NEAR: ["suppression_list"], md5(7)["value"]: ["suppression_list"]}
    assert result.disputes_opened == 2
    assert all(d.state == "open" and d.opened_by is None for d in Dispute.objects.all())
    assert set(BenignEntry.objects.values_list("covered_at", flat=True)) != {None}


def test_the_dispute_is_an_event_for_members_who_see_the_hash_and_nothing_for_the_others(
        alice, bob, charlie, trusted_group, pipeline, listing):
    alice.submit(alice.statement([md5(7)], share="trusted"))
    pipeline()
    heads = {actor.slug: actor.feed()["next_after"] for actor in (alice, bob, charlie)}

    listing(("md5", md5(7)["value"]))

    for member in (alice, bob):
        [event] = member.feed(after=heads[member.slug])["events"]
        assert event["type"] == "hash.updated"
        assert event["hash"]["dispute"]["state"] == "open"
        assert event["hash"]["dispute"]["reasons"] == ["suppression_list"]
        assert "cause" not in event
        assert [d["reasons"] for d in member.api.get("/api/v1/disputes/").json()["disputes"]] == [["suppression_list"]]
    assert charlie.feed(after=heads["charlie"])["events"] == []
    assert charlie.api.get("/api/v1/disputes/").json()["disputes"] == []


def test_each_dispute_is_audited_with_whoever_added_the_entry(alice, pipeline, listing, django_user_model):
    alice.submit(alice.statement([md5(7)]), alice.statement([md5(8)]))
    pipeline()
    admin = django_user_model.objects.create_user("keeper", is_staff=True)

    listing(("md5", md5(7)["value"]), ("md5", md5(8)["value"]), actor=admin)

    opened = AuditEvent.objects.filter(action="dispute.open")
    assert sorted(int(e.object_id) for e in opened) == sorted(Dispute.objects.values_list("pk", flat=True))
    assert {e.actor_label for e in opened} == {"admin:keeper"}


def test_adding_the_same_entries_again_opens_nothing_more(alice, bob, pipeline, listing):
    alice.submit(alice.statement([md5(7)]))
    pipeline()
    listing(("md5", md5(7)["value"]))
    events = bob.feed()["next_after"]
    audit = AuditEvent.objects.count()

    again = listing(("md5", md5(7)["value"]))

    assert (again.disputes_opened, len(again.added), again.unchanged) == (0, 0, 1)
    assert Dispute.objects.count() == 1 and bob.feed()["next_after"] == events
    assert AuditEvent.objects.count() == audit


def test_a_hash_with_an_open_dispute_gets_no_second_one(alice, bob, pipeline, listing):
    alice.submit(alice.statement([md5(7)]))
    pipeline()
    bob.submit(bob.feedback(md5(7), "disagree", reasons=["benign_common_image"]))
    pipeline()

    listing(("md5", md5(7)["value"]))

    assert [d.reasons for d in Dispute.objects.all()] == [["benign_common_image"]]


def test_reactivating_an_entry_disputes_what_it_covers_now(alice, pipeline, listing):
    listing(("md5", md5(7)["value"]))
    benign_entries_set_active(entry_ids=BenignEntry.objects.values_list("pk", flat=True), active=False)
    alice.submit(alice.statement([md5(7)]))
    pipeline()
    assert not Dispute.objects.exists()

    benign_entries_set_active(entry_ids=BenignEntry.objects.values_list("pk", flat=True), active=True)

    assert disputed() == {md5(7)["value"]: ["suppression_list"]}


def test_hashes_an_interrupted_run_left_uncovered_are_disputed_by_the_next_one(alice, pipeline, listing, settings,
                                                                              monkeypatch):
    settings.PUBLISH_BATCH_SIZE = 1  # one transaction per hash
    alice.submit(alice.statement([md5(7)]), alice.statement([md5(8)]))
    pipeline()
    calls = []

    def dies_in_the_second_batch(**kwargs):
        calls.append(kwargs)
        if len(calls) == 2:
            raise SystemExit("killed")
        return disputes_open(**kwargs)

    monkeypatch.setattr(services, "disputes_open", dies_in_the_second_batch)
    with pytest.raises(SystemExit):
        listing(("md5", md5(7)["value"]), ("md5", md5(8)["value"]))
    monkeypatch.undo()
    assert Dispute.objects.count() == 1 and BenignEntry.objects.filter(covered_at__isnull=True).count() == 2

    assert benign_entries_cover() == 1
    assert benign_entries_cover() == 0
    assert set(disputed()) == {md5(7)["value"], md5(8)["value"]}
    assert not BenignEntry.objects.filter(covered_at__isnull=True).exists()
