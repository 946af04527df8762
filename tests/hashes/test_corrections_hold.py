"""An administrator's decision on a dispute holds until an administrator changes it (DESIGN.md,
"Feedback, disputes and corrections"; review findings 5 and 6).

- `removed`: a later statement of the same value, in an audience that saw the hash removed, is
  refused (`hash_removed`) until an administrator with hashes.resolve_dispute lifts the removal
  (audited); a statement of an audience that never saw the hash live goes on as if the removal never
  was, so the refusal tells nobody of a group's removal.
- `upheld` / `relabelled`: the member whose dispute it was opens no other on that hash by itself (in
  an audience that sees its decided dispute): its `disagree` still counts as its verdict; other
  members may still open one."""

from __future__ import annotations

import importlib
from typing import Any, Callable

import pytest

from audit.models import AuditEvent
from consortium.api.errors import Conflict
from hashes.models import Dispute, Event, Feedback, Hash, Statement
from hashes.services.disputes import dispute_resolve, removal_lift
from tests.factories import BASE_PDQ, flip, md5, pdq, pdq_value
from tests.governance.test_disputes import onlooker, reviewer  # noqa: F401  (fixtures)
from tests.hashes.test_non_interference import IAT, normalise, observe, reset


def code_of(actor, jti: str) -> tuple[str, str]:
    statement = Statement.objects.get(member=actor.member, jti=jti)
    return statement.state, statement.rejection_code


def removed(alice, bob, pipeline, target: dict[str, Any], **share: Any) -> Hash:
    """alice asserts `target`, bob disputes it, an administrator removes it."""
    alice.submit(alice.statement([target], labels=["glorification"], jti="a1", **share))
    pipeline()
    bob.submit(bob.feedback(target, "disagree", reasons=["newsworthy"], jti="b1", **share))
    pipeline()
    dispute_resolve(dispute_id=Dispute.objects.get(state="open").pk, outcome="removed", resolution="News footage.")
    return Hash.objects.get(value=target["value"])


def held(actor, target: dict[str, Any]) -> list:
    return actor.api.post("/api/v1/match/", {"signals": [target], "exclude_disputed": True},
                          format="json").json()["results"][0]["matches"]


@pytest.mark.parametrize("target", [md5(555), pdq(9)], ids=["md5", "pdq"])
def test_a_removed_hash_is_not_live_again_by_anyones_next_statement_of_it(alice, bob, charlie, pipeline, target):
    hash_ = removed(alice, bob, pipeline, target)
    assert hash_.state == "retracted"
    seq = Event.objects.order_by("-seq").values_list("seq", flat=True).first()

    alice.submit(alice.statement([target], labels=["glorification"], jti="a2"),  # the same claim, a new jti
                 alice.statement([md5(900), target], jti="a3"))  # with another signal: refused whole
    charlie.submit(charlie.statement([target], jti="c1"))
    pipeline()

    assert code_of(alice, "a2") == code_of(alice, "a3") == code_of(charlie, "c1") == ("rejected", "hash_removed")
    assert alice.api.get(f"/api/v1/statements/{Statement.objects.get(jti='a2').pk}/").json()["rejection_code"] \
        == "hash_removed"
    assert Hash.objects.get(pk=hash_.pk).state == "retracted"
    assert not Hash.objects.filter(value=md5(900)["value"]).exists()
    assert not Event.objects.filter(seq__gt=seq).exists()
    assert held(bob, target) == [] and bob.api.post("/api/v1/match/", {"signals": [target]},
                                                       format="json").json()["results"][0]["matches"] == []
    assert Hash.objects.get(pk=hash_.pk).removal_holds == [None]  # the consortium's removal: every audience


def test_a_copy_of_a_removed_picture_within_the_dedupe_distance_is_refused_too(alice, bob, charlie, pipeline):
    """A PDQ within DEDUPE_DISTANCE of a live hash would corroborate it: the same picture, re-encoded.
    Of a removed hash it is refused like the value itself; a variant farther away is a new hash."""
    removed(alice, bob, pipeline, pdq_value(BASE_PDQ))
    copy, variant = pdq_value(flip(BASE_PDQ, range(5))), pdq_value(flip(BASE_PDQ, range(100, 120)))
    charlie.submit(charlie.statement([copy], jti="c1"), charlie.statement([variant], jti="c2"))
    pipeline()

    assert code_of(charlie, "c1") == ("rejected", "hash_removed")
    assert code_of(charlie, "c2")[0] == "published"
    assert not Hash.objects.filter(value=copy["value"]).exists()
    assert len(held(bob, variant)) == 1


def test_lifting_the_removal_lets_the_value_be_asserted_again_and_is_audited(alice, bob, pipeline, admin_user):
    target = md5(556)
    hash_ = removed(alice, bob, pipeline, target)
    alice.submit(alice.statement([target], jti="a2"))
    pipeline()
    assert code_of(alice, "a2") == ("rejected", "hash_removed")

    removal_lift(hash_id=hash_.pk, reason="The footage turned out to be the attacker's own.", actor=admin_user)
    with pytest.raises(Conflict) as twice:
        removal_lift(hash_id=hash_.pk, reason="again", actor=admin_user)
    assert twice.value.code == "removal_not_held"
    record = AuditEvent.objects.get(action="hash.removal_lift")
    assert record.before == {"removal_holds": [None]} and record.after["removal_holds"] is None
    assert Hash.objects.get(pk=hash_.pk).state == "retracted"  # nothing members see changes

    alice.submit(alice.statement([target], jti="a3"))
    pipeline()
    assert code_of(alice, "a2") == ("rejected", "hash_removed")  # what was refused stays refused
    assert code_of(alice, "a3")[0] == "published"
    assert Hash.objects.get(pk=hash_.pk).state == "active"
    assert len(held(bob, target)) == 1


def test_a_removal_not_lifted_still_holds_after_another_audience_brought_the_hash_back_and_lost_it(
        alice, bob, charlie, homeoffice, trusted_group, pipeline):
    """The consortium's hash that only "trusted" keeps live is removed (holding for "trusted"); a
    second group, which never saw it live, brings it back and has it removed in turn: both hold."""
    from members.models import SharingGroup

    others = SharingGroup.objects.create(slug="others", name="Others")
    others.members.set([charlie.member, homeoffice.member])
    homeoffice.submit(homeoffice.statement([md5(570)], jti="h1"))
    pipeline()
    alice.submit(alice.statement([md5(570)], share="trusted", jti="a1"))
    pipeline()
    homeoffice.submit(homeoffice.retraction("h1", jti="hr1"))
    bob.submit(bob.feedback(md5(570), "disagree", reasons=["other"], share="trusted", jti="b1"))
    pipeline()
    dispute_resolve(dispute_id=Dispute.objects.get(state="open").pk, outcome="removed", resolution="Not TVEC.")
    charlie.submit(charlie.statement([md5(570)], share="others", jti="c1"))
    pipeline()
    assert code_of(charlie, "c1")[0] == "published"  # "others" never saw it removed
    homeoffice.submit(homeoffice.feedback(md5(570), "disagree", reasons=["other"], share="others", jti="hf1"))
    pipeline()
    dispute_resolve(dispute_id=Dispute.objects.get(state="open").pk, outcome="removed", resolution="Still not.")

    alice.submit(alice.statement([md5(570)], share="trusted", jti="a2"))
    charlie.submit(charlie.statement([md5(570)], share="others", jti="c2"))
    pipeline()
    assert code_of(alice, "a2") == code_of(charlie, "c2") == ("rejected", "hash_removed")
    assert Hash.objects.get(value=md5(570)["value"]).removal_holds == sorted([trusted_group.pk, others.pk])


def test_removals_made_before_the_upgrade_hold_after_it(alice, bob, charlie, pipeline):
    """hashes/0012 holds the removals made before it as the service holds them now; a hash back
    live since is left alone."""
    from django.apps import apps

    migration = importlib.import_module("hashes.migrations.0012_hash_removal_holds")
    still = removed(alice, bob, pipeline, md5(560))
    charlie.submit(charlie.statement([md5(561)], jti="c1"))
    pipeline()
    bob.submit(bob.feedback(md5(561), "disagree", reasons=["other"], jti="b2"))
    pipeline()
    dispute_resolve(dispute_id=Dispute.objects.get(state="open").pk, outcome="removed", resolution="Other.")
    back = Hash.objects.get(value=md5(561)["value"])
    removal_lift(hash_id=back.pk, reason="Reviewed again.")
    charlie.submit(charlie.statement([md5(561)], jti="c2"))
    pipeline()
    Hash.objects.update(removal_holds=None)  # as before the migration

    migration.hold_past_removals(apps, None)

    assert Hash.objects.get(pk=still.pk).removal_holds == [None]
    assert Hash.objects.get(pk=back.pk).removal_holds is None and Hash.objects.get(pk=back.pk).state == "active"


def test_only_dispute_review_lifts_a_removal_in_the_admin(alice, bob, pipeline, client, reviewer, onlooker):
    hash_ = removed(alice, bob, pipeline, md5(557))
    dispute = Dispute.objects.get()
    lift = f"/admin/hashes/dispute/{dispute.pk}/lift/"

    client.force_login(onlooker)
    assert b'id="lift-link"' not in client.get(f"/admin/hashes/dispute/{dispute.pk}/change/").content
    assert client.post(lift, {"reason": "looks fine"}).status_code == 403
    assert Hash.objects.get(pk=hash_.pk).removal_holds == [None]
    assert not AuditEvent.objects.filter(action="hash.removal_lift").exists()

    client.force_login(reviewer)
    page = client.get(f"/admin/hashes/dispute/{dispute.pk}/change/").content
    assert b'id="lift-link"' in page and b'id="removal-holds"' in page
    assert b'id="lift-form"' in client.get(lift).content
    assert b"reason" in client.post(lift, {"reason": ""}).content  # refused: nothing changes
    assert Hash.objects.get(pk=hash_.pk).removal_holds == [None]
    response = client.post(lift, {"reason": "Reviewed again: terrorist content after all."})
    assert response.status_code == 302
    assert Hash.objects.get(pk=hash_.pk).removal_holds is None
    record = AuditEvent.objects.get(action="hash.removal_lift")
    assert record.actor_user == reviewer and record.after["reason"].startswith("Reviewed again")
    assert b'id="lift-link"' not in client.get(f"/admin/hashes/dispute/{dispute.pk}/change/").content
    assert b"removal_not_held" in client.post(lift, {"reason": "again"}).content


@pytest.mark.parametrize("outcome", ["upheld", "relabelled"])
def test_the_member_whose_dispute_was_decided_does_not_reopen_it_by_changing_its_reasons(
        alice, bob, charlie, pipeline, outcome):
    target = md5(558)
    alice.submit(alice.statement([target], labels=["glorification"]))
    pipeline()
    bob.submit(bob.feedback(target, "disagree", reasons=["newsworthy"]))
    pipeline()
    dispute_resolve(dispute_id=Dispute.objects.get().pk, outcome=outcome, resolution="Glorification; stays.",
                    labels=["glorification"])

    bob.submit(bob.feedback(target, "disagree", reasons=["other"], jti="again"))
    pipeline()

    assert code_of(bob, "again")[0] == "published"  # its verdict counts, with its new reasons
    assert Feedback.objects.get(member=bob.member, ended_at__isnull=True).reasons == ["other"]
    assert not Dispute.objects.filter(state="open").exists()
    event = charlie.feed()["events"][-1]
    assert event["hash"]["feedback"]["disagree"] == 1 and event["hash"]["dispute"]["state"] == outcome
    assert len(held(charlie, target)) == 1

    # Another member may still put it in question.
    charlie.submit(charlie.feedback(target, "disagree", reasons=["not_tvec"]))
    pipeline()
    assert Dispute.objects.get(state="open").member_id == charlie.member.pk
    assert held(charlie, target) == []


def scenario(actors: dict[str, Any], pipeline: Callable[[], None], *, hidden: bool) -> None:
    """The "trusted" group (alice, bob) disputes and has removed, within the group, two group hashes
    (md5 702, a PDQ) and a consortium hash that only its statements keep live (701), and has a
    dispute on a consortium hash (703) upheld; charlie, outside, then asserts 701, 702 and a copy of
    the PDQ 3 bits away, and bob disputes 703 consortium-wide. The group re-asserting its removed values is refused, and bob's second group
    dispute does not open; what charlie reads must be the same as if the group had done nothing."""
    alice, bob, charlie, homeoffice = (actors[k] for k in ("alice", "bob", "charlie", "homeoffice"))

    def step(*batches: tuple[Any, list[str]]) -> None:
        for actor, statements in batches:
            if statements:
                actor.submit(*statements)
        pipeline()

    def group(actor, make: Callable[..., str], *args: Any, **fields: Any) -> list[str]:
        return [make(*args, iat=IAT, share="trusted", **fields)] if hidden else []

    step((homeoffice, [homeoffice.statement([md5(701)], jti="h1", iat=IAT),
                       homeoffice.statement([md5(703)], jti="h3", iat=IAT)]),
         (alice, group(alice, alice.statement, [md5(702)], jti="g2")
          + group(alice, alice.statement, [pdq_value(BASE_PDQ)], jti="g5")))
    step((alice, group(alice, alice.statement, [md5(701)], jti="g1")))
    step((homeoffice, [homeoffice.retraction("h1", jti="hr1", iat=IAT)]))
    step((bob, group(bob, bob.feedback, md5(701), "disagree", reasons=["newsworthy"], jti="gf1")
          + group(bob, bob.feedback, md5(702), "disagree", reasons=["newsworthy"], jti="gf2")
          + group(bob, bob.feedback, md5(703), "disagree", reasons=["newsworthy"], jti="gf3")
          + group(bob, bob.feedback, pdq_value(BASE_PDQ), "disagree", reasons=["newsworthy"], jti="gf5")))
    if hidden:
        for value, outcome in ((md5(701), "removed"), (md5(702), "removed"), (md5(703), "upheld"),
                               (pdq_value(BASE_PDQ), "removed")):
            dispute = Dispute.objects.get(hash__value=value["value"], state="open")
            dispute_resolve(dispute_id=dispute.pk, outcome=outcome, resolution="decided within the group")
    step((alice, group(alice, alice.statement, [md5(701)], jti="g3") + group(alice, alice.statement, [md5(702)], jti="g4")
          + group(alice, alice.statement, [pdq_value(flip(BASE_PDQ, range(3)))], jti="g6")),
         (bob, group(bob, bob.feedback, md5(703), "disagree", reasons=["other"], jti="gf4")))
    step((charlie, [charlie.statement([md5(701), md5(702)], jti="c1", iat=IAT),
                    charlie.statement([pdq_value(flip(BASE_PDQ, range(3)))], jti="c2", iat=IAT)]),
         (bob, [bob.feedback(md5(703), "disagree", reasons=["not_tvec"], jti="bf1", iat=IAT)]))


def test_what_an_outsider_sees_is_the_same_whatever_the_group_had_removed_or_upheld(
        alice, bob, charlie, homeoffice, trusted_group, pipeline):
    actors = {"alice": alice, "bob": bob, "charlie": charlie, "homeoffice": homeoffice}
    scenario(actors, pipeline, hidden=False)
    alone = observe(charlie)
    reset()
    scenario(actors, pipeline, hidden=True)
    interleaved = observe(charlie)

    # Within the group the decisions hold: its removed values are refused, bob's second dispute
    # does not open (its verdict counts).
    assert code_of(alice, "g3") == code_of(alice, "g4") == code_of(alice, "g6") == ("rejected", "hash_removed")
    assert sorted(Hash.objects.filter(removal_holds__isnull=False).values_list("value", "removal_holds")) == sorted(
        (value, [trusted_group.pk]) for value in (md5(701)["value"], md5(702)["value"], BASE_PDQ))
    assert code_of(bob, "gf4")[0] == "published"
    assert Dispute.objects.filter(hash__value=md5(703)["value"], share_group=trusted_group).count() == 1
    # Outside, the group's removals and decision bind nothing: charlie's statement is published and
    # bob's consortium-wide dispute opens, as when the group did nothing.
    assert code_of(charlie, "c1")[0] == code_of(charlie, "c2")[0] == "published"
    assert Hash.objects.get(value=md5(701)["value"]).state == "active"
    assert Dispute.objects.get(hash__value=md5(703)["value"], share_group__isnull=True).state == "open"
    assert normalise(interleaved) == normalise(alone)
