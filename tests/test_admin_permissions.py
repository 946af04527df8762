"""Administrators act only through permissions. Every admin action, page and form that changes state
needs its own permission: a staff user who may only view, or who may change the model but lacks that
permission, is refused and nothing changes, not even the audit trail. The shipped groups grant what
their names say; a key is approved by someone other than whoever registered it in the admin; admin
sign-in locks out after repeated failures and every sign-in, sign-out and failure is audited."""

from __future__ import annotations

import importlib
import json
from datetime import timedelta
from typing import Any, Callable

import pytest
from django.apps import apps as global_apps
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.test import Client, override_settings
from django.urls import reverse

from audit.models import AdminLoginFailure, AuditEvent
from consortium.api.errors import DomainError
from consortium_client.keys import generate_private_key, public_jwk
from distribution.delivery.signing import generate_secret
from distribution.models import Subscription
from distribution.secretbox import seal
from hashes.models import Hash, Incident
from members.models import ApiToken, Member, SigningKey
from members.services import key_register, member_set_status
from tests.actors import Actor

PASSWORD = "a long and correct passphrase"
LOCKED = "Too many failed sign-in attempts"


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def run_action(client: Client, model, action: str, obj, **extra):
    data = {"action": action, "_selected_action": [obj.pk], **extra}
    return client.post(url(model, "changelist"), data, follow=True)


def offered_actions(client: Client, model) -> set[str]:
    response = client.get(url(model, "changelist"))
    assert response.status_code == 200
    form = response.context["action_form"]
    return {name for name, _ in form.fields["action"].choices if name} if form else set()


def permissions(*names: str) -> list[Permission]:
    found = [Permission.objects.get(content_type__app_label=name.split(".")[0], codename=name.split(".")[1])
             for name in names]
    return found


def everything_but(name: str) -> list[Permission]:
    app, codename = name.split(".")
    return list(Permission.objects.exclude(content_type__app_label=app, codename=codename))


@pytest.fixture
def staff(db, django_user_model) -> Callable[..., Client]:
    """A logged-in staff user (not a superuser) with exactly these permissions and groups."""

    def make(*perms: Permission | str, groups: tuple[str, ...] = (), name: str = "staffer") -> Client:
        user = django_user_model.objects.create_user(name, is_staff=True)
        user.user_permissions.add(*[p if isinstance(p, Permission) else permissions(p)[0] for p in perms])
        user.groups.add(*[Group.objects.get(name=group) for group in groups])
        client = Client()
        client.force_login(user)
        return client

    return make


def database_state() -> dict[str, Any]:
    """Everything an admin action could change, and how many audit events exist."""
    return {
        "members": list(Member.objects.order_by("pk").values_list("slug", "status")),
        "tokens": list(ApiToken.objects.order_by("pk").values_list("prefix", "revoked_at")),
        "keys": list(SigningKey.objects.order_by("pk").values_list("kid", "state", "state_changed_at")),
        "incidents": list(Incident.objects.order_by("pk").values_list("slug", "name", "state", "closed_at")),
        "subscriptions": list(Subscription.objects.order_by("pk").values_list("id", "state", "cursor", "updated_at")),
        "audit": AuditEvent.objects.count(),
    }


def pending_key(owner: Actor, **kwargs) -> SigningKey:
    return key_register(member=owner.member, jwk=public_jwk(generate_private_key()), **kwargs)


def subscription(actor: Actor, **fields) -> Subscription:
    return Subscription.objects.create(member=actor.member, url="https://hooks.example/consortium",
                                       secret_encrypted=seal(generate_secret()), **fields)


# model, action, the permission it needs, the object it acts on, extra form data, audit action written
ACTIONS = [
    (Member, "suspend", "members.suspend_member", lambda a: a.member, {}, "member.suspended"),
    (Member, "reactivate", "members.suspend_member",
     lambda a: member_set_status(member=a.member, status="suspended"), {}, "member.active"),
    (ApiToken, "revoke", "members.revoke_token", lambda a: ApiToken.objects.get(member=a.member), {}, "token.revoke"),
    (SigningKey, "approve", "members.approve_signingkey", pending_key, {}, "key.active"),
    (SigningKey, "retire", "members.revoke_signingkey", lambda a: a.key, {}, "key.retired"),
    (SigningKey, "revoke", "members.revoke_signingkey", pending_key, {"apply": "1"}, "key.revoked"),
    (Incident, "close", "hashes.manage_incident", lambda a: Incident.objects.create(slug="halle", name="Halle"), {},
     "incident.close"),
    (Subscription, "pause", "distribution.manage_subscription", subscription, {}, "subscription.pause"),
    (Subscription, "reenable", "distribution.manage_subscription",
     lambda a: subscription(a, state="paused", state_reason="admin"), {}, "subscription.reenable"),
    (Subscription, "replay", "distribution.manage_subscription", lambda a: subscription(a, cursor=3),
     {"apply": "1", "from_seq": "1"}, "subscription.replay"),
]
ACTION_IDS = [f"{model._meta.model_name}.{action}" for model, action, *_ in ACTIONS]


def model_permission(model, verb: str) -> str:
    return f"{model._meta.app_label}.{verb}_{model._meta.model_name}"


REFUSED = {
    "view only": lambda model, needed: [model_permission(model, "view")],
    "view and change": lambda model, needed: [model_permission(model, "view"), model_permission(model, "change")],
    "every other permission": lambda model, needed: everything_but(needed),
}


# --- actions ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("who", REFUSED)
@pytest.mark.parametrize("model, action, needed, make, extra, audited", ACTIONS, ids=ACTION_IDS)
def test_an_action_is_neither_offered_nor_run_without_its_permission(
    staff, alice, who, model, action, needed, make, extra, audited,
):
    obj = make(alice)
    client = staff(*REFUSED[who](model, needed))
    before = database_state()

    assert action not in offered_actions(client, model)
    response = run_action(client, model, action, obj, **extra)

    # Back on the list: Django treats an action it does not offer this user as no action at all.
    assert response.status_code == 200 and response.resolver_match.url_name.endswith("_changelist")
    assert {str(m) for m in response.context["messages"]} <= {"No action selected."}
    assert database_state() == before


@pytest.mark.parametrize("model, action, needed, make, extra, audited", ACTIONS, ids=ACTION_IDS)
def test_an_action_runs_with_its_permission_and_is_audited(staff, alice, model, action, needed, make, extra, audited):
    obj = make(alice)
    client = staff(model_permission(model, "view"), needed)
    before = database_state()

    assert action in offered_actions(client, model)
    run_action(client, model, action, obj, **extra)

    assert database_state() != before
    event = AuditEvent.objects.get(action=audited, object_id=str(obj.pk))
    assert event.actor_label == "admin:staffer"


# --- pages and forms -------------------------------------------------------------------------------

@pytest.mark.parametrize("perms", [["members.view_member"], ["members.view_member", "members.change_member"],
                                   ["members.view_member", "members.change_member", "members.add_apitoken",
                                    "members.change_apitoken"]])
def test_issuing_a_token_needs_issue_token(staff, alice, perms):
    client = staff(*perms)
    issue = reverse("admin:members_member_issue_token", args=[alice.member.pk])
    before = database_state()

    assert client.get(issue).status_code == 403
    assert client.post(issue, {"name": "ops", "scopes": ["read"]}).status_code == 403
    assert client.get(url(ApiToken, "add")).status_code == 403
    assert "issue-token" not in client.get(url(Member, "change", alice.member.pk)).content.decode()
    assert database_state() == before


def test_a_token_is_issued_with_issue_token(staff, alice):
    client = staff("members.view_member", "members.issue_token")

    response = client.post(reverse("admin:members_member_issue_token", args=[alice.member.pk]),
                           {"name": "ops", "scopes": ["read"]})

    assert response.status_code == 200
    token = ApiToken.objects.get(member=alice.member, name="ops")
    assert AuditEvent.objects.get(action="token.create", object_id=str(token.pk)).actor_label == "admin:staffer"


@pytest.mark.parametrize("perms", [["members.view_member"], ["members.view_member", "members.change_member",
                                                             "members.change_signingkey"]])
def test_registering_a_key_needs_add_signingkey(staff, alice, perms):
    client = staff(*perms)
    register = reverse("admin:members_member_register_key", args=[alice.member.pk])
    jwk = public_jwk(generate_private_key(), kid="alice-new")
    before = database_state()

    assert client.post(register, {"jwk": json.dumps(jwk), "approve": "on"}).status_code == 403
    assert "register-key" not in client.get(url(Member, "change", alice.member.pk)).content.decode()
    assert database_state() == before


def test_a_key_registered_with_add_signingkey_is_pending_even_when_asked_to_approve(staff, alice):
    client = staff("members.view_member", "members.add_signingkey", "members.approve_signingkey")
    jwk = public_jwk(generate_private_key(), kid="alice-new")

    response = client.post(reverse("admin:members_member_register_key", args=[alice.member.pk]),
                           {"jwk": json.dumps(jwk), "approve": "on"})

    assert response.status_code == 302
    key = SigningKey.objects.get(kid="alice-new")
    assert (key.state, key.registered_by.username) == ("pending", "staffer")
    assert AuditEvent.objects.get(action="key.register", object_id=str(key.pk)).after["state"] == "pending"


def test_a_key_cannot_be_made_active_or_added_through_its_change_and_add_forms(staff, alice):
    key = pending_key(alice)
    client = staff("members.view_signingkey", "members.change_signingkey", "members.add_signingkey")
    before = database_state()

    changed = client.post(url(SigningKey, "change", key.pk), {"state": "active"})
    added = client.post(url(SigningKey, "add"), {"member": alice.member.pk, "kid": "x", "thumbprint": "x",
                                                 "public_key": "x", "state": "active"})

    assert (changed.status_code, added.status_code) == (403, 403)
    assert database_state() == before


def test_a_members_status_cannot_be_changed_through_its_change_form(staff, alice):
    client = staff("members.view_member", "members.change_member")
    before = database_state()

    response = client.post(url(Member, "change", alice.member.pk), {"name": "Alice", "status": "suspended"})

    assert response.status_code == 302
    assert Member.objects.get(pk=alice.member.pk).status == "active"
    assert database_state()["members"] == before["members"]


@pytest.mark.parametrize("perms", [["hashes.view_incident"], ["hashes.view_incident", "hashes.add_incident",
                                                              "hashes.change_incident", "hashes.delete_incident"]])
def test_declaring_changing_or_deleting_an_incident_needs_manage_incident(staff, db, perms):
    incident = Incident.objects.create(slug="christchurch", name="Christchurch")
    client = staff(*perms)
    before = database_state()

    declared = client.post(url(Incident, "add"), {"slug": "halle", "name": "Halle", "description": ""})
    changed = client.post(url(Incident, "change", incident.pk), {"name": "Renamed", "description": ""})
    deleted = client.post(url(Incident, "delete", incident.pk), {"post": "yes"})

    assert (declared.status_code, changed.status_code, deleted.status_code) == (403, 403, 403)
    assert database_state() == before


def test_an_incident_is_changed_with_manage_incident(staff, db):
    incident = Incident.objects.create(slug="christchurch", name="Christchurch")
    client = staff("hashes.view_incident", "hashes.change_incident", "hashes.manage_incident")

    response = client.post(url(Incident, "change", incident.pk), {"name": "Christchurch 2019", "description": ""})

    assert response.status_code == 302
    assert Incident.objects.get().name == "Christchurch 2019"


@pytest.mark.parametrize("perms", [["distribution.view_subscription", "distribution.delete_subscription"],
                                   ["distribution.view_subscription", "distribution.manage_subscription"]])
def test_deleting_a_subscription_needs_delete_and_manage_subscription(staff, alice, perms):
    target = subscription(alice)
    client = staff(*perms)

    response = client.post(url(Subscription, "delete", target.pk), {"post": "yes"})

    assert response.status_code == 403
    assert Subscription.objects.filter(pk=target.pk).exists()


def test_a_subscription_is_deleted_with_delete_and_manage_subscription(staff, alice):
    target = subscription(alice)
    client = staff("distribution.view_subscription", "distribution.delete_subscription",
                   "distribution.manage_subscription")

    response = client.post(url(Subscription, "delete", target.pk), {"post": "yes"})

    assert response.status_code == 302
    assert not Subscription.objects.filter(pk=target.pk).exists()


def test_an_incident_is_declared_with_manage_incident(staff, db):
    client = staff("hashes.view_incident", "hashes.add_incident", "hashes.manage_incident")

    response = client.post(url(Incident, "add"), {"slug": "halle", "name": "Halle", "description": ""})

    assert response.status_code == 302
    incident = Incident.objects.get(slug="halle")
    assert AuditEvent.objects.get(action="incident.create", object_id=str(incident.pk)).actor_label == "admin:staffer"


# --- second-person approval ------------------------------------------------------------------------

def register_in_admin(client: Client, actor: Actor, kid: str) -> SigningKey:
    jwk = public_jwk(generate_private_key(), kid=kid)
    response = client.post(reverse("admin:members_member_register_key", args=[actor.member.pk]),
                           {"jwk": json.dumps(jwk)})
    assert response.status_code == 302
    return SigningKey.objects.get(kid=kid)


APPROVER = ("members.view_member", "members.view_signingkey", "members.add_signingkey", "members.approve_signingkey")


def test_whoever_registered_a_key_in_the_admin_cannot_approve_it(staff, alice):
    client = staff(*APPROVER)
    key = register_in_admin(client, alice, "alice-new")
    before = database_state()

    response = run_action(client, SigningKey, "approve", key)

    assert "another administrator must approve it" in response.content.decode()
    assert database_state() == before


def test_an_administrator_cannot_register_and_approve_a_key_in_one_step(alice, django_user_model):
    """The service refuses it whoever calls it: approving is a second person's act."""
    administrator = django_user_model.objects.create_user("registrar", is_staff=True)

    with pytest.raises(DomainError) as refused:
        key_register(member=alice.member, jwk=public_jwk(generate_private_key()), actor=administrator, approve=True)

    assert refused.value.code == "key_approval_needs_second_person"
    assert SigningKey.objects.filter(member=alice.member).count() == 1  # alice's own, approved by an operator

def test_another_administrator_approves_a_key_registered_in_the_admin(staff, alice):
    key = register_in_admin(staff(*APPROVER, name="registrar"), alice, "alice-new")

    run_action(staff(*APPROVER, name="approver"), SigningKey, "approve", key)

    key.refresh_from_db()
    assert key.state == "active"
    assert AuditEvent.objects.get(action="key.active", object_id=str(key.pk)).actor_label == "admin:approver"


def test_any_approver_approves_a_key_a_member_registered_through_the_api(staff, alice):
    response = alice.api.post("/api/v1/keys/", public_jwk(generate_private_key(), kid="alice-api"), format="json")
    assert response.status_code == 201, response.content
    key = SigningKey.objects.get(kid="alice-api")
    assert key.registered_by is None

    run_action(staff(*APPROVER), SigningKey, "approve", key)

    key.refresh_from_db()
    assert key.state == "active"


# --- the shipped groups ----------------------------------------------------------------------------

REGISTERED = sorted(admin.site._registry, key=lambda model: model._meta.label_lower)


def test_an_auditor_sees_every_page_and_the_audit_trail_but_is_offered_no_action(staff, alice):
    client = staff(groups=("Auditor",))
    event = AuditEvent.objects.first()

    for model in REGISTERED:
        assert offered_actions(client, model) == set(), model
    assert client.get(url(AuditEvent, "change", event.pk)).status_code == 200
    assert client.get(url(Member, "change", alice.member.pk)).status_code == 200


def test_an_auditor_runs_no_action_changes_no_form_and_issues_no_token(staff, alice):
    client = staff(groups=("Auditor",))
    key = pending_key(alice)
    before = database_state()

    run_action(client, Member, "suspend", alice.member)
    run_action(client, SigningKey, "approve", key)
    run_action(client, ApiToken, "revoke", ApiToken.objects.get(member=alice.member))
    assert client.post(url(Member, "change", alice.member.pk), {"name": "Changed"}).status_code == 403
    assert client.post(reverse("admin:members_member_issue_token", args=[alice.member.pk]),
                       {"scopes": ["read"]}).status_code == 403

    assert database_state() == before


def test_onboarding_issues_tokens_and_registers_keys_but_approves_none(staff, alice):
    client = staff(groups=("Onboarding",))

    issued = client.post(reverse("admin:members_member_issue_token", args=[alice.member.pk]), {"scopes": ["read"]})
    key = register_in_admin(client, alice, "alice-new")
    api_key = pending_key(alice, actor=alice.member)
    run_action(client, SigningKey, "approve", key)
    run_action(client, SigningKey, "approve", api_key)

    assert issued.status_code == 200 and ApiToken.objects.filter(member=alice.member).count() == 2
    assert SigningKey.objects.get(pk=key.pk).state == SigningKey.objects.get(pk=api_key.pk).state == "pending"
    assert "approve" not in offered_actions(client, SigningKey)


def test_key_approval_approves_what_onboarding_registered_but_registers_nothing(staff, alice):
    key = register_in_admin(staff(groups=("Onboarding",), name="onboarder"), alice, "alice-new")
    client = staff(groups=("Key approval",))

    run_action(client, SigningKey, "approve", key)

    assert SigningKey.objects.get(pk=key.pk).state == "active"
    assert client.post(reverse("admin:members_member_register_key", args=[alice.member.pk]),
                       {"jwk": json.dumps(public_jwk(generate_private_key()))}).status_code == 403


def test_incident_duty_declares_and_closes_incidents_and_pauses_subscriptions_but_suspends_no_one(staff, alice):
    client = staff(groups=("Incident duty",))
    watched = subscription(alice)

    client.post(url(Incident, "add"), {"slug": "halle", "name": "Halle", "description": ""})
    run_action(client, Incident, "close", Incident.objects.get(slug="halle"))
    run_action(client, Subscription, "pause", watched)
    run_action(client, Member, "suspend", alice.member)

    assert Incident.objects.get(slug="halle").state == "closed"
    assert Subscription.objects.get(pk=watched.pk).state == "paused"
    assert Member.objects.get(pk=alice.member.pk).status == "active"


def test_dispute_review_may_resolve_disputes_and_view_hashes_and_nothing_else(django_user_model, db):
    user = django_user_model.objects.create_user("reviewer", is_staff=True)
    user.groups.add(Group.objects.get(name="Dispute review"))

    assert user.has_perm("hashes.resolve_dispute") and user.has_perm("hashes.view_hash")
    assert not any(user.has_perm(p) for p in ("members.suspend_member", "members.issue_token",
                                              "members.approve_signingkey", "hashes.manage_incident",
                                              "distribution.manage_subscription", "hashes.change_hash"))
    assert Permission.objects.get(codename="resolve_dispute").content_type.model_class() is Hash


def test_only_dispute_review_among_the_groups_holds_resolve_dispute(db):
    holders = Group.objects.filter(permissions__codename="resolve_dispute").values_list("name", flat=True)

    assert list(holders) == ["Dispute review"]


def test_creating_the_roles_again_duplicates_nothing_and_removes_no_permission(db):
    roles = importlib.import_module("audit.migrations.0003_admin_roles")
    Group.objects.get(name="Onboarding").permissions.add(*permissions("members.view_sharinggroup"))
    custom = Group.objects.create(name="Operators' own")
    before = {g.name: set(g.permissions.values_list("codename", flat=True)) for g in Group.objects.all()}

    roles.create_roles(global_apps, None)

    after = {g.name: set(g.permissions.values_list("codename", flat=True)) for g in Group.objects.all()}
    assert after.keys() == before.keys() and Group.objects.get(pk=custom.pk)
    assert all(before[name] <= after[name] for name in before)
    assert after["Onboarding"] == before["Onboarding"]
    assert all(codename.startswith("view_") for codename in after["Auditor"])


# --- sign-in: lockout and audit --------------------------------------------------------------------

@pytest.fixture
def admin_user(django_user_model, settings):
    # Every attempt hashes a password, even for an unknown username; the fast hasher keeps this short.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user = django_user_model.objects.create_user("root", is_staff=True, is_superuser=True)
    user.set_password(PASSWORD)
    user.save()
    return user


def sign_in(username: str, password: str, ip: str = "192.0.2.1", **headers) -> tuple[Client, str]:
    client = Client(REMOTE_ADDR=ip, **headers)
    response = client.post(reverse("admin:login"), {"username": username, "password": password})
    return client, response.content.decode()


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def fail(username: str, times: int, ips: Callable[[int], str] = lambda n: "192.0.2.1") -> None:
    for n in range(times):
        client, page = sign_in(username, "wrong", ip=ips(n))
        assert not signed_in(client) and LOCKED not in page


def age_failures(seconds: int) -> None:
    for failure in AdminLoginFailure.objects.all():
        failure.at -= timedelta(seconds=seconds)
        failure.save()


def test_the_right_password_signs_in_after_fewer_failures_than_the_limit(admin_user):
    fail("root", 4, ips=lambda n: f"192.0.2.{10 + n}")

    client, _ = sign_in("root", PASSWORD)

    assert signed_in(client)


def test_after_five_failures_even_the_right_password_is_refused(admin_user):
    fail("root", 5, ips=lambda n: f"192.0.2.{10 + n}")

    client, page = sign_in("root", PASSWORD, ip="198.51.100.7")

    assert not signed_in(client) and LOCKED in page


def test_a_lockout_says_the_same_whether_or_not_the_username_exists(admin_user):
    fail("root", 5, ips=lambda n: f"192.0.2.{10 + n}")
    fail("nobody", 5, ips=lambda n: f"192.0.2.{20 + n}")

    _, existing = sign_in("root", "wrong", ip="198.51.100.7")
    _, unknown = sign_in("nobody", "wrong", ip="198.51.100.8")

    message = "Too many failed sign-in attempts for this account or from this address. Try again later."
    assert message in existing and message in unknown


def test_five_failures_from_one_address_lock_that_address_out_for_every_username(admin_user):
    for n in range(5):
        sign_in(f"guess{n}", "wrong", ip="203.0.113.9")

    locked, page = sign_in("root", PASSWORD, ip="203.0.113.9")
    elsewhere, _ = sign_in("root", PASSWORD, ip="198.51.100.7")

    assert not signed_in(locked) and LOCKED in page
    assert signed_in(elsewhere)


@override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))
def test_behind_the_proxy_the_address_is_the_one_the_proxy_saw(admin_user):
    for n in range(5):
        sign_in(f"guess{n}", "wrong", ip="10.0.0.1", HTTP_X_FORWARDED_FOR=f"1.2.3.4, 203.0.113.{n}")

    other_client, _ = sign_in("root", PASSWORD, ip="10.0.0.1", HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.7")

    assert signed_in(other_client)
    assert set(AdminLoginFailure.objects.values_list("ip", flat=True)) == {f"203.0.113.{n}" for n in range(5)}


def test_a_lockout_ends_after_the_lockout_period(admin_user, settings):
    fail("root", 5, ips=lambda n: f"192.0.2.{10 + n}")
    age_failures(settings.ADMIN_LOGIN_LOCKOUT_SECONDS - 5)
    still, _ = sign_in("root", PASSWORD)

    age_failures(10)
    client, _ = sign_in("root", PASSWORD)

    assert not signed_in(still) and signed_in(client)


def test_attempts_while_locked_out_do_not_extend_the_lockout(admin_user, settings):
    fail("root", 5, ips=lambda n: f"192.0.2.{10 + n}")
    age_failures(settings.ADMIN_LOGIN_LOCKOUT_SECONDS - 60)
    for _ in range(3):
        _, page = sign_in("root", "wrong", ip="198.51.100.7")
        assert LOCKED in page
    age_failures(61)

    client, _ = sign_in("root", PASSWORD)

    assert signed_in(client)


def test_failures_spread_over_more_than_the_lockout_period_do_not_lock(admin_user, settings):
    fail("root", 1)
    age_failures(settings.ADMIN_LOGIN_LOCKOUT_SECONDS + 60)
    fail("root", 4, ips=lambda n: f"192.0.2.{10 + n}")

    client, _ = sign_in("root", PASSWORD, ip="198.51.100.7")

    assert signed_in(client)


@override_settings(ADMIN_LOGIN_MAX_FAILURES=2, ADMIN_LOGIN_LOCKOUT_SECONDS=60)
def test_the_limit_and_the_period_come_from_settings_and_old_failures_are_deleted(admin_user):
    fail("root", 2, ips=lambda n: f"192.0.2.{10 + n}")
    locked, _ = sign_in("root", PASSWORD)
    age_failures(121)
    sign_in("someone", "wrong", ip="198.51.100.9")

    assert not signed_in(locked)
    assert list(AdminLoginFailure.objects.values_list("username", flat=True)) == ["someone"]


def test_sign_in_sign_out_and_failures_are_audited_without_the_password(admin_user):
    sign_in("Root", "a wrong passphrase", ip="192.0.2.44")
    client, _ = sign_in("root", PASSWORD, ip="192.0.2.46")
    client.post(reverse("admin:logout"))
    fail("root", 4)
    sign_in("root", PASSWORD, ip="192.0.2.45")

    failed = AuditEvent.objects.filter(action="admin.login_failed").order_by("id")
    login = AuditEvent.objects.get(action="admin.login")
    logout = AuditEvent.objects.get(action="admin.logout")
    locked = AuditEvent.objects.get(action="admin.login_locked")
    assert (failed.count(), failed[0].actor_label, failed[0].after) == (
        5, "anonymous", {"username": "Root", "ip": "192.0.2.44"})
    assert (login.actor_label, login.object_id, login.after) == ("admin:root", str(admin_user.pk), {"ip": "192.0.2.46"})
    assert (logout.actor_label, logout.after) == ("admin:root", {"ip": "192.0.2.46"})
    assert (locked.actor_label, locked.after) == ("anonymous", {"username": "root", "ip": "192.0.2.45"})
    everything = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert "passphrase" not in everything and PASSWORD not in everything
