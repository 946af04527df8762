"""The audit trail: every state change by a member, an administrator or an operator leaves an event
saying who did what to which object, from what to what; events can only be appended, whether one
tries through the model, the admin, or (on PostgreSQL) raw SQL."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

from audit.models import AuditEvent
from consortium_client.keys import generate_private_key, public_jwk
from hashes.models import Incident, Label
from members.models import ApiToken, Member, SigningKey
from members.services import key_register
from tests.actors import TOKEN
from tests.factories import md5

ON_SQLITE = connection.vendor == "sqlite"


@pytest.fixture
def admin_client(client, django_user_model):
    """A superuser logged in with force_login; it has no password, as hashing one only costs time."""
    client.force_login(django_user_model.objects.create_superuser("admin", "admin@example.org", None))
    return client


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def run_action(client, model, action: str, *objects) -> None:
    response = client.post(admin_url(model, "changelist"), {"action": action, "_selected_action": [o.pk for o in objects]})
    assert response.status_code == 302, response.content


def event_for(action: str, obj) -> AuditEvent:
    [event] = AuditEvent.objects.filter(action=action, object_type=obj._meta.label_lower, object_id=str(obj.pk))
    return event


# --- what is recorded ------------------------------------------------------------------------------

# A random secret, and ones whose text after the last `_` ("a", nothing) is in any record: the check
# must look for the whole secret, which no record holds by chance.
@pytest.mark.parametrize("secret", [None, "Q" * 41 + "_a", "Q" * 42 + "_"])
def test_issuing_a_token_in_the_admin_is_recorded_without_the_secret(admin_client, alice, monkeypatch, secret):
    if secret is not None:
        monkeypatch.setattr("members.services.secrets.token_urlsafe", lambda nbytes: secret)
    response = admin_client.post(reverse("admin:members_member_issue_token", args=[alice.member.pk]),
                                 {"scopes": ["read"]})
    [(prefix, shown)] = TOKEN.findall(response.content.decode())
    token = ApiToken.objects.get(prefix=prefix)
    assert secret in (None, shown)

    event = event_for("token.create", token)

    assert (event.actor_label, event.actor_user.username, event.before) == ("admin:admin", "admin", None)
    assert event.after == {"member": "alice", "prefix": token.prefix, "scopes": ["read"], "expires_at": None}
    assert shown not in f"{event.before} {event.after} {event.object_repr} {event.object_id}"


def test_revoking_a_token_in_the_admin_is_recorded_once(admin_client, alice):
    token = ApiToken.objects.get(member=alice.member)

    run_action(admin_client, ApiToken, "revoke", token)
    run_action(admin_client, ApiToken, "revoke", token)

    event = event_for("token.revoke", token)
    assert (event.actor_label, event.before, event.after) == ("admin:admin", {"revoked": False}, {"revoked": True})


def test_a_member_registering_a_key_is_recorded_as_that_member_with_its_token(alice):
    jwk = public_jwk(generate_private_key())

    alice.api.post("/api/v1/keys/", jwk, format="json")

    event = event_for("key.register", SigningKey.objects.get(kid=jwk["kid"]))
    assert (event.actor_label, event.actor_member, event.before) == ("member:alice", alice.member, None)
    token = alice.member.tokens.get()
    assert event.after == {"member": "alice", "kid": jwk["kid"], "state": "pending", "token": token.prefix}


def test_an_administrator_approving_a_key_is_recorded_with_before_and_after(admin_client, alice):
    key = key_register(member=alice.member, jwk=public_jwk(generate_private_key()))

    run_action(admin_client, SigningKey, "approve", key)

    event = event_for("key.active", key)
    assert event.actor_label == "admin:admin"
    assert (event.before["state"], event.after["state"]) == ("pending", "active")


def test_suspending_a_member_in_the_admin_is_recorded_with_before_and_after(admin_client, alice):
    run_action(admin_client, Member, "suspend", alice.member)

    event = event_for("member.suspended", alice.member)
    assert event.actor_label == "admin:admin"
    assert (event.before["status"], event.after["status"]) == ("active", "suspended")


def test_editing_a_label_in_the_admin_records_the_changed_field(admin_client, db):
    label = Label.objects.create(slug="propaganda", name="Propaganda")

    admin_client.post(admin_url(Label, "change", label.pk),
                      {"slug": "propaganda", "name": "Terrorist propaganda", "description": "", "is_active": "on"})

    event = event_for("label.change", label)
    assert (event.actor_label, event.before, event.after) == (
        "admin:admin", {"name": "Propaganda"}, {"name": "Terrorist propaganda"})


def test_changing_a_sharing_groups_members_in_the_admin_records_who_was_in_and_who_is(admin_client, trusted_group, charlie):
    alice, bob = trusted_group.members.order_by("slug")
    created = trusted_group.created_at

    admin_client.post(admin_url(type(trusted_group), "change", trusted_group.pk), {
        "slug": "trusted", "name": "Trusted", "members": [alice.pk, bob.pk, charlie.member.pk],
        "created_at_0": created.strftime("%Y-%m-%d"), "created_at_1": created.strftime("%H:%M:%S"),
    })

    event = event_for("sharinggroup.change", trusted_group)
    assert event.before["members"] == sorted([str(alice.pk), str(bob.pk)])
    assert event.after["members"] == sorted([str(alice.pk), str(bob.pk), str(charlie.member.pk)])


def test_closing_an_incident_in_the_admin_is_recorded(admin_client, db):
    incident = Incident.objects.create(slug="christchurch", name="Christchurch")

    run_action(admin_client, Incident, "close", incident)

    event = event_for("incident.close", incident)
    assert (event.actor_label, event.before, event.after) == ("admin:admin", {"state": "active"}, {"state": "closed"})


def test_submitting_statements_is_recorded_as_the_submitting_member(alice):
    accepted = alice.submit(alice.statement([md5(1)]), alice.statement([md5(2)]))["accepted"]

    [event] = AuditEvent.objects.filter(action="statements.submit")

    assert (event.actor_label, event.actor_member) == ("member:alice", alice.member)
    assert event.after["count"] == 2
    assert sorted(event.after["ids"]) == sorted(a["id"] for a in accepted)


def test_an_operator_command_is_recorded_as_the_operator(db):
    call_command("member", "add", "acme", "--name", "Acme", "--kind", "ngo", stdout=StringIO())

    event = event_for("member.create", Member.objects.get(slug="acme"))
    assert (event.actor_label, event.actor_member, event.actor_user) == ("operator", None, None)
    assert event.after == {"slug": "acme", "name": "Acme", "kind": "ngo", "status": "active"}


# --- append-only -----------------------------------------------------------------------------------

@pytest.fixture
def event(alice) -> AuditEvent:
    return AuditEvent.objects.filter(actor_label="operator").first()


def test_an_audit_event_cannot_be_changed_through_the_model(event):
    event.action = "nothing.happened"

    with pytest.raises(ValueError):
        event.save()

    event.refresh_from_db()
    assert event.action != "nothing.happened"


def test_an_audit_event_cannot_be_deleted_through_the_model(event):
    with pytest.raises(ValueError):
        event.delete()

    assert AuditEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.parametrize("change", [
    lambda events: events.update(action="nothing.happened"),
    lambda events: events.delete(),
], ids=["update", "delete"])
def test_audit_events_cannot_be_changed_in_bulk_through_the_model(event, change):
    with pytest.raises((ValueError, DatabaseError)), transaction.atomic():
        change(AuditEvent.objects.filter(pk=event.pk))

    assert AuditEvent.objects.get(pk=event.pk).action == event.action


@pytest.mark.skipif(ON_SQLITE, reason="the append-only trigger (audit migration 0002) exists on PostgreSQL only")
@pytest.mark.parametrize("sql", [
    "UPDATE audit_auditevent SET action = 'nothing.happened' WHERE id = %s",
    "DELETE FROM audit_auditevent WHERE id = %s",
], ids=["update", "delete"])
def test_on_postgresql_not_even_raw_sql_changes_an_audit_event(event, sql):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [event.pk])

    assert AuditEvent.objects.get(pk=event.pk).action == event.action


# --- the admin only shows the trail ----------------------------------------------------------------

def test_the_admin_offers_no_way_to_add_change_or_delete_audit_events(admin_client, event):
    assert admin_client.get(admin_url(AuditEvent, "add")).status_code == 403
    assert admin_client.post(admin_url(AuditEvent, "change", event.pk), {"action": "x"}).status_code == 403
    assert admin_client.get(admin_url(AuditEvent, "delete", event.pk)).status_code == 403
    assert admin_client.post(admin_url(AuditEvent, "delete", event.pk), {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).action == event.action


def test_the_audit_admin_shows_events_read_only_with_no_bulk_delete(admin_client, event):
    changelist = admin_client.get(admin_url(AuditEvent, "changelist")).content.decode()
    page = admin_client.get(admin_url(AuditEvent, "change", event.pk)).content.decode()

    assert event.action in changelist and "delete_selected" not in changelist
    assert 'name="_save"' not in page and event.actor_label in page
