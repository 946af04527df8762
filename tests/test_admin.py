"""The Django admin, driven as an administrator drives it: every registered model's pages open; a
token issued from a member's page is shown once, never cached and never stored; keys are registered
(pending, for a second administrator to approve) and moved through their states by actions that
refuse impossible transitions; incidents are declared and closed; labels are edited; statements can
be filtered by rejection code."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest

from distribution.delivery.signing import generate_secret
from distribution.models import Delivery, Subscription
from distribution.secretbox import seal
from django.contrib import admin
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from consortium_client.keys import generate_private_key, private_jwk, public_jwk
from consortium_client.statements import StatementSigner, hash_statement
from hashes.models import Incident, Label, Statement
from media.models import MediaJob
from members.models import ApiToken, Member, SigningKey
from members.services import key_register, key_set_state
from suppression.models import BenignEntry
from tests.actors import TOKEN, token_secret
from tests.factories import md5

REGISTERED = sorted(admin.site._registry, key=lambda model: model._meta.label_lower)


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def run_action(client, model, action: str, *objects, follow: bool = False, **extra):
    data = {"action": action, "_selected_action": [obj.pk for obj in objects], **extra}
    return client.post(url(model, "changelist"), data, follow=follow)


def bearer(token: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api


@pytest.fixture
def admin_client(client, django_user_model):
    """A superuser logged in with force_login; it has no password, as hashing one only costs time."""
    client.force_login(django_user_model.objects.create_superuser("admin", "admin@example.org", None))
    return client


@pytest.fixture
def everything(alice, bob, trusted_group, pipeline, admin_client):
    """At least one row of every registered model."""
    Incident.objects.create(slug="christchurch", name="Christchurch")
    Group.objects.create(name="reviewers")
    alice.submit(alice.statement([md5(1)]))
    pipeline()
    bob.submit(bob.feedback(md5(1), "disagree", reasons=["newsworthy"]))  # a verdict and a dispute
    pipeline()
    subscription = Subscription.objects.create(member=bob.member, url="https://hooks.example/consortium",
                                               secret_encrypted=seal(generate_secret()))
    Delivery.objects.create(subscription=subscription, lane="test", webhook_id="msg_everything")
    BenignEntry.objects.create(signal_type="md5", value="0" * 32, reason="empty file", added_by_label="operator")
    MediaJob.objects.create(owner=alice.member, state=MediaJob.State.FAILED, error_code="media_unreadable")


# --- every page opens ------------------------------------------------------------------------------

@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model._meta.label_lower)
def test_every_changelist_loads(admin_client, everything, model):
    assert admin_client.get(url(model, "changelist")).status_code == 200


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model._meta.label_lower)
def test_every_change_page_loads(admin_client, everything, model):
    obj = model._default_manager.first()
    assert obj is not None, f"add a {model._meta.label} row to the `everything` fixture"

    assert admin_client.get(url(model, "change", obj.pk)).status_code == 200


def test_statements_can_be_filtered_by_rejection_code(admin_client, alice, pipeline):
    forger = StatementSigner(generate_private_key(), alice.key.kid)
    forged = forger.sign(hash_statement(iss="alice", signals=[md5(2)], content_type="photo"))
    alice.submit(alice.statement([md5(1)]), forged)
    pipeline()
    rejected = Statement.objects.get(state="rejected")

    response = admin_client.get(url(Statement, "changelist"), {"rejection_code": "signature_invalid"})

    assert [s.pk for s in response.context["cl"].queryset] == [rejected.pk]
    choices = [c["display"] for spec in response.context["cl"].filter_specs if spec.title == "rejection code"
               for c in spec.choices(response.context["cl"])]
    assert choices == ["All", "signature_invalid"]  # the codes statements have, not an empty one


def test_the_rejection_code_filter_reads_only_rejected_statements(admin_client, alice, pipeline):
    """Its choices come from the rows with a code (the partial index statement_rejected), not from a
    DISTINCT over every statement on each load of the list."""
    alice.submit(alice.statement([md5(1)]))
    pipeline()
    with CaptureQueriesContext(connection) as queries:
        assert admin_client.get(url(Statement, "changelist")).status_code == 200
    reads = [q["sql"] for q in queries.captured_queries if "DISTINCT" in q["sql"] and "rejection_code" in q["sql"]]
    assert len(reads) == 1
    where = reads[0].partition("WHERE")[2]
    assert "NOT" in where and "rejection_code" in where


# --- tokens ----------------------------------------------------------------------------------------

def test_a_token_issued_from_the_member_page_is_shown_once_not_cached_and_stored_as_a_digest(admin_client, alice):
    issue = reverse("admin:members_member_issue_token", args=[alice.member.pk])
    assert admin_client.get(issue).status_code == 200

    response = admin_client.post(issue, {"name": "ops laptop", "scopes": ["read", "match"]})

    assert response.status_code == 200
    assert "no-store" in [directive.strip() for directive in response["Cache-Control"].split(",")]
    [plaintext] = [match[0] for match in TOKEN.finditer(response.content.decode())]
    stored = ApiToken.objects.get(member=alice.member, name="ops laptop")
    assert stored.digest == hashlib.sha256(plaintext.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM members_apitoken WHERE id = %s", [stored.pk])
        assert not any(token_secret(plaintext) in str(column) for column in cursor.fetchone())
    assert plaintext not in admin_client.get(url(Member, "change", alice.member.pk)).content.decode()
    assert bearer(plaintext).get("/api/v1/me/").json()["scopes"] == ["match", "read"]


def test_a_tokens_admin_page_never_shows_its_digest(admin_client, alice):
    token = ApiToken.objects.get(member=alice.member)

    page = admin_client.get(url(ApiToken, "change", token.pk)).content.decode()

    assert token.prefix in page and token.digest not in page


def test_revoking_a_token_in_the_admin_locks_it_out(admin_client, alice):
    run_action(admin_client, ApiToken, "revoke", ApiToken.objects.get(member=alice.member))

    assert alice.api.get("/api/v1/me/").json()["error"]["code"] == "token_revoked"


# --- members ---------------------------------------------------------------------------------------

def test_suspending_a_member_in_the_admin_stops_it_at_the_api(admin_client, alice):
    run_action(admin_client, Member, "suspend", alice.member)

    response = alice.api.get("/api/v1/me/")
    assert (response.status_code, response.json()["error"]["code"]) == (403, "member_suspended")


# --- keys ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("form_extra", [{}, {"approve": "on"}], ids=["plain", "asking-for-approval"])
def test_a_key_registered_from_the_member_page_waits_for_another_administrator(admin_client, alice, form_extra):
    jwk = public_jwk(generate_private_key(), kid="alice-new")

    response = admin_client.post(reverse("admin:members_member_register_key", args=[alice.member.pk]),
                                 {"jwk": json.dumps(jwk), **form_extra})

    assert response.status_code == 302
    key = SigningKey.objects.get(kid=jwk["kid"])
    assert (key.state, key.registered_by.username) == ("pending", "admin")


def test_a_private_jwk_pasted_on_the_member_page_is_refused_and_nothing_stored(admin_client, alice):
    jwk = private_jwk(generate_private_key())

    response = admin_client.post(reverse("admin:members_member_register_key", args=[alice.member.pk]),
                                 {"jwk": json.dumps(jwk), "approve": "on"})

    assert response.status_code == 200 and "jwk_private_key" in response.content.decode()
    assert not SigningKey.objects.filter(public_key=jwk["x"]).exists()


@pytest.mark.parametrize("start, action, end", [
    ("pending", "approve", "active"),
    ("pending", "revoke", "revoked"),
    ("active", "retire", "retired"),
    ("active", "revoke", "revoked"),
    ("retired", "revoke", "revoked"),
])
def test_key_actions_move_a_key_to_its_next_state(admin_client, alice, start, action, end):
    key = key_in_state(alice, start)

    run_action(admin_client, SigningKey, action, key, **({"apply": "1"} if action == "revoke" else {}))

    key.refresh_from_db()
    assert key.state == end


@pytest.mark.parametrize("start, action", [
    ("revoked", "approve"), ("revoked", "retire"), ("retired", "approve"), ("pending", "retire"),
])
def test_key_actions_refuse_impossible_transitions(admin_client, alice, start, action):
    key = key_in_state(alice, start)

    response = run_action(admin_client, SigningKey, action, key, follow=True)

    key.refresh_from_db()
    assert key.state == start
    assert "cannot become" in response.content.decode()


def test_revoking_a_key_asks_since_when_it_was_compromised_and_withdraws_from_then_on(
    admin_client, alice, pipeline, django_capture_on_commit_callbacks,
):
    alice.submit(alice.statement([md5(1)], jti="old"), alice.statement([md5(2)], jti="new"))
    pipeline()
    Statement.objects.filter(jti="old").update(received_at=timezone.now() - timedelta(days=2))
    key = SigningKey.objects.get(pk=alice.key.pk)

    asked = run_action(admin_client, SigningKey, "revoke", key)
    assert asked.status_code == 200 and 'name="compromised_since"' in asked.content.decode()
    key.refresh_from_db()
    assert key.state == "active"  # nothing happens until the form is sent
    since = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
    with django_capture_on_commit_callbacks(execute=True):
        run_action(admin_client, SigningKey, "revoke", key, apply="1", compromised_since=since)

    key.refresh_from_db()
    assert key.state == "revoked" and key.compromised_since is not None and key.withdrawn_at is not None
    codes = dict(Statement.objects.filter(member=alice.member).values_list("jti", "rejection_code"))
    assert codes == {"old": "", "new": "key_revoked"}


def key_in_state(actor, state: str) -> SigningKey:
    key = key_register(member=actor.member, jwk=public_jwk(generate_private_key()))
    path = {"pending": [], "active": ["active"], "retired": ["active", "retired"], "revoked": ["revoked"]}[state]
    for step in path:
        key = key_set_state(key=key, state=step)
    return key


# --- incidents and labels --------------------------------------------------------------------------

def test_an_administrator_declares_and_closes_an_incident(admin_client, db):
    response = admin_client.post(url(Incident, "add"), {"slug": "halle", "name": "Halle", "description": ""})
    assert response.status_code == 302, response.content
    incident = Incident.objects.get(slug="halle")
    assert (incident.state, incident.closed_at) == ("active", None)

    run_action(admin_client, Incident, "close", incident)

    incident.refresh_from_db()
    assert incident.state == "closed" and incident.closed_at is not None


def test_an_administrator_edits_a_label(admin_client, db):
    label = Label.objects.create(slug="propaganda", name="Propaganda")

    response = admin_client.post(url(Label, "change", label.pk),
                                 {"slug": "propaganda", "name": "Terrorist propaganda", "description": "", "is_active": "on"})

    assert response.status_code == 302, response.content
    label.refresh_from_db()
    assert label.name == "Terrorist propaganda"


def test_a_hash_page_lists_its_newest_corroborations_whatever_its_history(admin_client, alice, settings, pipeline):
    """Every repeat of a value ends the member's earlier corroboration and adds one: the page lists
    the newest HASH_PAGE_CORROBORATIONS and says there are more, in the same number of reads."""
    from hashes.admin import HASH_PAGE_CORROBORATIONS
    from hashes.models import Hash

    alice.submit(*(alice.statement([md5(5)]) for _ in range(3)))
    pipeline()
    page = reverse("admin:hashes_hash_change", args=[Hash.objects.get().pk])
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(page).content.decode().count("<tr><td><a ") == 3
    alice.submit(*(alice.statement([md5(5)]) for _ in range(HASH_PAGE_CORROBORATIONS)))
    pipeline()
    with CaptureQueriesContext(connection) as many:
        content = admin_client.get(page).content.decode()

    assert content.count("<tr><td><a ") == HASH_PAGE_CORROBORATIONS and "older ones not listed" in content
    assert len(many.captured_queries) == len(few.captured_queries)
