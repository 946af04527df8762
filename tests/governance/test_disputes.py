"""The whole correction loop (issue 10's story): platform A shares a hash, platform B matches it and
disagrees (`newsworthy`), the dispute reaches both by feed and webhook, a subscriber that holds
contested hashes stops receiving it, an administrator removes it in the admin, every member gets the
retraction signed by the server, and the audit trail tells the story."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from audit.models import AuditEvent
from consortium.server_keys import server_jwks
from consortium_client import jws
from consortium_client.keys import load_public_jwk
from hashes.models import Dispute, Hash, Statement
from hashes.services.disputes import dispute_resolve
from tests.distribution.helpers import drive, subscribe
from tests.factories import md5, pdq


@pytest.fixture
def reviewer(django_user_model):
    user = django_user_model.objects.create_user("reviewer", password="pw-reviewer-1", is_staff=True)
    user.groups.add(Group.objects.get(name="Dispute review"))
    return user


@pytest.fixture
def onlooker(django_user_model):
    """Staff who may look at everything (the Auditor role) and resolve nothing."""
    user = django_user_model.objects.create_user("onlooker", password="pw-onlooker-1", is_staff=True)
    user.groups.add(Group.objects.get(name="Auditor"))
    return user


def resolve_in_admin(client, user, dispute_id: int, **form) -> object:
    client.force_login(user)
    return client.post(f"/admin/hashes/dispute/{dispute_id}/resolve/", form)


def test_the_whole_loop_from_disagree_to_removal_by_feed_webhook_and_audit(
        alice, bob, charlie, pipeline, receiver_factory, clock, reviewer, client):
    a_hook, b_hook, c_hook, c_held = (receiver_factory() for _ in range(4))
    subscribe(alice, a_hook)
    subscribe(bob, b_hook)
    subscribe(charlie, c_hook)
    subscribe(charlie, c_held, filters={"exclude_disputed": True})
    alice.submit(alice.statement([pdq(7)], labels=["glorification"]))
    pipeline()
    drive(clock)
    match = bob.api.post("/api/v1/match/", {"signals": [pdq(7)]}, format="json").json()
    assert len(match["results"][0]["matches"]) == 1
    bob.submit(bob.feedback(pdq(7), "disagree", reasons=["newsworthy"], note="BBC report of the attack"))
    pipeline()
    drive(clock)

    dispute = Dispute.objects.get()
    for actor, hook in ((alice, a_hook), (bob, b_hook), (charlie, c_hook), (charlie, c_held)):
        last = hook.events()[-1]
        assert last["hash"]["dispute"]["state"] == "open", actor.slug
        assert last["hash"]["dispute"]["reasons"] == ["newsworthy"]
        assert actor.feed()["events"][-1]["hash"]["dispute"]["id"] == dispute.pk
    # While it is contested, the holding subscriber gets nothing more of the hash.
    charlie.submit(charlie.statement([pdq(7)]))
    pipeline()
    drive(clock)
    assert c_hook.events()[-1]["hash"]["corroboration_count"] == 2
    assert len(c_held.events()) == 2 and c_held.events()[-1]["hash"]["corroboration_count"] == 1

    response = resolve_in_admin(client, reviewer, dispute.pk, outcome="removed",
                                resolution="News reporting of the attack, not terrorist content.")
    assert response.status_code == 302, response.content
    drive(clock)

    removal = Statement.objects.get(member__slug="consortium-server")
    keys = {k["kid"]: load_public_jwk(k) for k in server_jwks()["keys"]}
    parsed = jws.parse(removal.raw)
    assert jws.verify_signature(parsed, keys[parsed.kid])
    assert parsed.payload["iss"] == "consortium-server" and parsed.payload["kind"] == "retract"
    assert parsed.payload["target"] == {"type": "pdq", "value": pdq(7)["value"]}
    for actor, hook in ((alice, a_hook), (bob, b_hook), (charlie, c_hook), (charlie, c_held)):
        for last in (hook.events()[-1], actor.feed()["events"][-1]):
            assert last["type"] == "hash.retracted", actor.slug
            assert last["cause"] == {"member": "consortium-server", "kind": "retract", "jti": removal.jti,
                                     "statement": removal.raw}
            assert last["hash"]["dispute"]["state"] == "removed"
            assert last["hash"]["dispute"]["resolution"].startswith("News reporting")
    assert bob.api.post("/api/v1/match/", {"signals": [pdq(7)]}, format="json").json()["results"][0]["matches"] == []
    assert Hash.objects.get().state == "retracted"
    stats = charlie.api.get("/api/v1/stats/").json()["total"]
    assert stats["all_labels"]["hashes"]["removed_by_dispute"] == 1
    assert stats["by_label"]["glorification"]["disputes"]["resolved"]["removed"] == 1

    # An auditor reconstructs who did what, and when.
    trail = [(e.action, e.actor_label) for e in AuditEvent.objects.filter(object_type="hashes.dispute").order_by("id")]
    assert trail == [("dispute.open", "member:bob"), ("dispute.resolve", "admin:reviewer")]
    resolved = AuditEvent.objects.get(action="dispute.resolve")
    assert resolved.after["removal"] == str(removal.pk) and resolved.after["state"] == "removed"


def test_upheld_keeps_the_hash_and_shows_the_reason_and_a_closed_dispute_cannot_be_resolved_again(
        alice, bob, charlie, pipeline, reviewer, client):
    alice.submit(alice.statement([md5(3)]))
    pipeline()
    bob.submit(bob.feedback(md5(3), "disagree", reasons=["wrong_label"]))
    pipeline()
    dispute = Dispute.objects.get()
    assert resolve_in_admin(client, reviewer, dispute.pk, outcome="upheld",
                            resolution="The video is the attacker's own stream.").status_code == 302
    event = charlie.feed()["events"][-1]
    assert event["type"] == "hash.updated"
    assert event["hash"]["dispute"]["state"] == "upheld" and event["hash"]["state"] == "active"
    before = charlie.feed()
    with pytest.raises(Exception) as failed:
        dispute_resolve(dispute_id=dispute.pk, outcome="removed", resolution="again", actor=reviewer)
    assert failed.value.code == "dispute_closed"
    again = resolve_in_admin(client, reviewer, dispute.pk, outcome="removed", resolution="again")
    assert again.status_code == 200 and b"dispute_closed" in again.content
    assert charlie.feed() == before and Hash.objects.get().state == "active"


def test_relabelled_replaces_the_labels_for_everyone(alice, bob, charlie, pipeline, reviewer, client):
    alice.submit(alice.statement([md5(4)], labels=["glorification"]))
    pipeline()
    bob.submit(bob.feedback(md5(4), "disagree", reasons=["wrong_label"], labels=["recruitment"]))
    pipeline()
    dispute = Dispute.objects.get()
    assert resolve_in_admin(client, reviewer, dispute.pk, outcome="relabelled", resolution="Recruitment material.",
                            labels=["recruitment"]).status_code == 302
    assert charlie.feed()["events"][-1]["hash"]["labels"] == ["recruitment"]
    assert charlie.api.get(f"/api/v1/hashes/{Hash.objects.get().pk}/").json()["labels"] == ["recruitment"]
    # A new statement's labels do not undo an administrator's decision.
    charlie.submit(charlie.statement([md5(4)], labels=["glorification"]))
    pipeline()
    assert charlie.feed()["events"][-1]["hash"]["labels"] == ["recruitment"]


def test_only_the_dispute_review_permission_resolves_and_viewing_grants_nothing(
        alice, bob, pipeline, onlooker, reviewer, client):
    alice.submit(alice.statement([md5(5)]))
    pipeline()
    bob.submit(bob.feedback(md5(5), "disagree", reasons=["other"]))
    pipeline()
    dispute = Dispute.objects.get()
    client.force_login(onlooker)
    page = client.get(f"/admin/hashes/dispute/{dispute.pk}/change/")
    assert page.status_code == 200 and b"Evidence" in page.content and b"resolve-link" not in page.content
    assert client.get("/admin/hashes/dispute/").status_code == 200
    assert resolve_in_admin(client, onlooker, dispute.pk, outcome="removed", resolution="x").status_code == 403
    assert Dispute.objects.get().state == "open" and not Statement.objects.filter(member__kind="server").exists()
    client.force_login(reviewer)
    page = client.get(f"/admin/hashes/dispute/{dispute.pk}/change/")
    assert b"resolve-link" in page.content and b"Evidence" in page.content


@pytest.mark.parametrize("form, code", [
    ({"outcome": "relabelled", "resolution": "x"}, b"label_unknown"),
    ({"outcome": "deleted", "resolution": "x"}, b"outcome"),
    ({"outcome": "upheld", "resolution": ""}, b"resolution"),
])
def test_a_bad_resolution_changes_nothing(alice, bob, pipeline, reviewer, client, form, code):
    alice.submit(alice.statement([md5(6)]))
    pipeline()
    bob.submit(bob.feedback(md5(6), "disagree", reasons=["other"]))
    pipeline()
    dispute = Dispute.objects.get()
    response = resolve_in_admin(client, reviewer, dispute.pk, **form)
    assert response.status_code == 200 and code in response.content
    assert Dispute.objects.get().state == "open"


def test_a_holding_subscriber_still_learns_that_a_contested_hash_was_retracted(
        alice, bob, charlie, pipeline, receiver_factory, clock):
    held = receiver_factory()
    subscribe(charlie, held, filters={"exclude_disputed": True})
    alice.submit(alice.statement([md5(11)], jti="a11"))
    pipeline()
    bob.submit(bob.feedback(md5(11), "disagree", reasons=["low_quality"]))
    pipeline()
    alice.submit(alice.retraction("a11", reason="our mistake"))
    pipeline()
    drive(clock)
    assert [(e["type"], e["hash"]["dispute"] and e["hash"]["dispute"]["state"]) for e in held.events()] == [
        ("hash.added", None), ("hash.updated", "open"), ("hash.retracted", "open")]


def test_nobody_onboards_a_member_as_the_server(admin_client):
    from members.models import Member
    from members.services import member_create

    form = admin_client.get("/admin/members/member/add/").content.decode()
    assert 'value="platform"' in form and 'value="server"' not in form
    response = admin_client.post("/admin/members/member/add/", {"slug": "fake", "name": "Fake", "kind": "server"})
    assert response.status_code == 200 and not Member.objects.filter(slug="fake").exists()
    for slug, kind, code in (("fake", "server", "member_kind_invalid"), ("consortium-server", "ngo", "member_slug_reserved")):
        with pytest.raises(Exception) as refused:
            member_create(slug=slug, name="x", kind=kind)
        assert refused.value.code == code
