"""The admin as an administrator uses it, in a real browser: signing in, and approving a pending
signing key from the keys' list. The permission rules themselves are tested without a browser in
tests/test_admin_permissions.py; here the pages, their forms and their scripts are what is tested."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from consortium_client.keys import generate_private_key, public_jwk
from members.models import SigningKey
from members.services import key_register
from tests.actors import Actor

from .helpers import PASSWORD, expect, fill_login_form

APPROVE = "Approve selected pending keys (not those you registered)"
LOGIN_ERROR = "Please enter the correct username and password for a staff account."


@pytest.fixture
def pending_key(alice: Actor) -> SigningKey:
    """A key alice registered through the API: pending until an administrator approves it."""
    return key_register(member=alice.member, jwk=public_jwk(generate_private_key(), kid="alice-2026"),
                        actor=alice.member)


def keys_changelist() -> str:
    return reverse("admin:members_signingkey_changelist")


def test_a_wrong_password_shows_the_error_and_the_right_one_signs_in(page, staff_user):
    user = staff_user("root", groups=("Auditor",))
    user.set_password(PASSWORD)
    user.save()

    with page.expect_response(lambda response: response.url.endswith("/admin/css/login.css")) as stylesheet:
        fill_login_form(page, "root", "not the passphrase")

    expect(page.locator(".errornote")).to_contain_text(LOGIN_ERROR)
    assert stylesheet.value.status == 200
    assert page.url.endswith("/admin/login/")
    failure = AuditEvent.objects.get(action="admin.login_failed")
    assert failure.after == {"username": "root", "ip": "127.0.0.1"}

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    assert AuditEvent.objects.get(action="admin.login").actor_label == "admin:root"


def test_a_key_approver_approves_a_pending_key_from_the_keys_list(admin_login, staff_user, pending_key):
    page = admin_login(staff_user("approver", groups=("Key approval",)))
    page.goto(keys_changelist() + "?state__exact=pending")
    row = page.get_by_role("row").filter(has_text=pending_key.kid)
    expect(row).to_contain_text("Pending")

    row.get_by_role("checkbox").check()
    page.get_by_role("combobox", name="Action").select_option(label=APPROVE)
    expect(page.locator(".action-counter")).to_have_text("1 of 1 selected")  # the admin's actions.js ran
    page.get_by_role("button", name="Go").click()

    expect(page.locator("#changelist")).not_to_contain_text(pending_key.kid)
    page.goto(keys_changelist() + "?state__exact=active")
    expect(page.get_by_role("row").filter(has_text=pending_key.kid)).to_contain_text("Active")
    pending_key.refresh_from_db()
    assert pending_key.state == SigningKey.State.ACTIVE
    approval = AuditEvent.objects.get(action="key.active", object_id=str(pending_key.pk))
    assert (approval.actor_label, approval.before["state"], approval.after["state"]) == (
        "admin:approver", "pending", "active")


def test_a_viewer_sees_the_pending_key_but_cannot_approve_it(admin_login, staff_user, pending_key):
    page = admin_login(staff_user("auditor", groups=("Auditor",)))
    page.goto(keys_changelist())

    expect(page.get_by_role("row").filter(has_text=pending_key.kid)).to_contain_text("Pending")
    expect(page.get_by_role("combobox", name="Action")).to_have_count(0)
    expect(page.locator("#changelist input[name='_selected_action']")).to_have_count(0)

    # The form the approver would have sent, sent by hand with the viewer's session and CSRF token.
    token = page.locator("#logout-form input[name='csrfmiddlewaretoken']").get_attribute("value")
    response = page.request.post(keys_changelist(), form={
        "csrfmiddlewaretoken": token, "action": "approve", "_selected_action": str(pending_key.pk), "index": "0"})

    assert response.status == 200 and "Select signing key to view" in response.text()  # not a CSRF 403
    pending_key.refresh_from_db()
    assert pending_key.state == SigningKey.State.PENDING
    assert not AuditEvent.objects.filter(action="key.active", object_id=str(pending_key.pk)).exists()
