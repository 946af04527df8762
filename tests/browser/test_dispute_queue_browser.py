"""The dispute queue as a reviewer uses it, in a real browser: the open case in the list with how
long it has waited, its evidence, and a removal chosen on the resolve form."""

from __future__ import annotations

from django.urls import reverse

from hashes.models import Dispute, Hash, Statement
from tests.factories import md5

from .helpers import expect


def test_a_reviewer_removes_a_contested_hash_from_the_dispute_queue(admin_login, staff_user, alice, bob, pipeline):
    alice.submit(alice.statement([md5(8)], labels=["glorification"]))
    pipeline()
    bob.submit(bob.feedback(md5(8), "disagree", reasons=["newsworthy"], note="Broadcast news footage"))
    pipeline()
    dispute = Dispute.objects.get()

    page = admin_login(staff_user("reviewer", groups=("Dispute review",)))
    page.goto(reverse("admin:hashes_dispute_changelist"))
    row = page.get_by_role("row").filter(has_text="bob")
    expect(row).to_contain_text("Open")
    expect(row).to_contain_text("newsworthy")
    row.get_by_role("link", name=str(dispute.pk)).click()

    evidence = page.locator("#evidence")
    expect(evidence.locator("#statements")).to_contain_text("alice")
    expect(evidence.locator("#statements")).to_contain_text("glorification")
    expect(evidence.locator("#feedback")).to_contain_text("Broadcast news footage")
    expect(evidence.locator("#waited")).to_have_text("0h 0m")
    page.get_by_role("link", name="Resolve this dispute").click()

    page.get_by_label("removed").check()
    page.get_by_label("Resolution").fill("News reporting of the attack, not terrorist content.")
    page.get_by_role("button", name="Resolve").click()

    expect(page.locator(".messagelist")).to_contain_text(f"Dispute {dispute.pk} resolved: removed.")
    expect(page.locator("#hash-state")).to_have_text("retracted")
    expect(page.get_by_role("link", name="Resolve this dispute")).to_have_count(0)
    assert Dispute.objects.get().state == "removed" and Hash.objects.get().state == "retracted"
    assert Statement.objects.filter(member__kind="server", kind="retract").count() == 1


def test_an_auditor_sees_the_queue_and_is_offered_no_resolution(admin_login, staff_user, alice, bob, pipeline):
    alice.submit(alice.statement([md5(9)]))
    pipeline()
    bob.submit(bob.feedback(md5(9), "disagree", reasons=["other"]))
    pipeline()
    dispute = Dispute.objects.get()

    page = admin_login(staff_user("auditor", groups=("Auditor",)))
    page.goto(reverse("admin:hashes_dispute_change", args=[dispute.pk]))
    expect(page.locator("#evidence")).to_contain_text("bob")
    expect(page.get_by_role("link", name="Resolve this dispute")).to_have_count(0)
    response = page.goto(reverse("admin:hashes_dispute_resolve", args=[dispute.pk]))
    assert response.status == 403
    assert Dispute.objects.get().state == "open"
