"""The subscriptions API: a member manages its own subscriptions only (anyone else's answer 404),
secrets are shown once and stored encrypted, URLs and filters are checked with stable error codes,
and every change is audited without the secret."""

from __future__ import annotations

import pytest
from django.db import connection
from django.urls import reverse
from rest_framework import serializers
from rest_framework.test import APIClient

from audit.models import AuditEvent
from consortium.api.errors import DomainError
from consortium.api.fields import BoundedListField
from distribution.services.subscriptions import FILTER_DEFAULTS, check_filters
from distribution.models import Subscription
from members.services import token_create
from tests.factories import md5

from .helpers import subscribe


def url(subscription_id: str, action: str = "") -> str:
    return f"/api/v1/subscriptions/{subscription_id}/" + (f"{action}/" if action else "")


def error_code(response) -> str:
    return response.json()["error"]["code"]


def test_subscribing_answers_201_with_the_secret_once_and_the_defaults(bob, receiver):
    created = subscribe(bob, receiver, description="SOC pipeline")

    assert created["secret"].startswith("whsec_")
    assert created["url"] == receiver.url and created["description"] == "SOC pipeline"
    assert created["filters"] == {"signal_types": [], "labels": [], "incident_only": False, "min_corroboration": 1,
                                  "include_retractions": True, "exclude_disputed": False}
    assert (created["state"], created["cursor"], created["backlog"], created["in_flight"]) == ("active", 0, 0, None)
    shown_again = bob.api.get(url(created["id"])).json()
    assert "secret" not in shown_again and shown_again["id"] == created["id"]
    assert [s["id"] for s in bob.api.get("/api/v1/subscriptions/").json()] == [created["id"]]


def test_the_secret_is_stored_encrypted_and_never_audited(bob, receiver):
    created = subscribe(bob, receiver)
    raw_secret = created["secret"].removeprefix("whsec_")

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM distribution_subscription")
        assert not any(raw_secret in str(column) for row in cursor.fetchall() for column in row)
    rotated = bob.api.patch(url(created["id"]), {"rotate_secret": True}, format="json").json()
    trail = " ".join(f"{e.before} {e.after}" for e in AuditEvent.objects.filter(object_type="distribution.subscription"))
    assert raw_secret not in trail and rotated["secret"].removeprefix("whsec_") not in trail
    assert rotated["secret"] != created["secret"]


def test_a_new_subscription_starts_at_the_feed_head_or_where_asked(alice, bob, receiver, pipeline):
    alice.submit(*[alice.statement([md5(n)]) for n in range(4)])
    pipeline()

    assert subscribe(bob, receiver)["cursor"] == 4
    assert subscribe(bob, receiver, after=1)["cursor"] == 1
    response = bob.api.post("/api/v1/subscriptions/", {"url": receiver.url, "after": 5}, format="json")
    assert (response.status_code, error_code(response)) == (400, "after_invalid")


def test_another_members_subscription_does_not_exist_for_you(bob, charlie, receiver):
    created = subscribe(bob, receiver)

    for method, path, body in [("get", url(created["id"]), None), ("patch", url(created["id"]), {"state": "paused"}),
                               ("delete", url(created["id"]), None), ("post", url(created["id"], "test"), None),
                               ("post", url(created["id"], "replay"), {"from_seq": 1}),
                               ("get", url(created["id"], "deliveries"), None)]:
        response = getattr(charlie.api, method)(path, body, format="json")
        assert (response.status_code, error_code(response)) == (404, "not_found"), (method, path)
    assert charlie.api.get("/api/v1/subscriptions/").json() == []
    assert Subscription.objects.get().state == "active"


SUBSCRIPTION_OPERATIONS = [  # (method, action or None for the list, body, status with the scope)
    ("get", None, None, 200),
    ("post", None, "url", 201),
    ("get", "", None, 200),
    ("patch", "", {"description": "changed"}, 200),
    ("post", "test", None, 202),
    ("post", "replay", {"from_seq": 1}, 202),
    ("get", "deliveries", None, 200),
    ("delete", "", None, 204),
]


def client_with_scopes(actor, *scopes: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token_create(member=actor.member, scopes=scopes).plaintext}")
    return api


def operate(api: APIClient, operation, subscription_id: str, receiver):
    method, action, body, _ = operation
    path = "/api/v1/subscriptions/" if action is None else url(subscription_id, action)
    return getattr(api, method)(path, {"url": receiver.url} if body == "url" else body, format="json")


@pytest.mark.parametrize("operation", SUBSCRIPTION_OPERATIONS, ids=lambda o: f"{o[0]} {o[1]}")
def test_every_subscription_operation_is_refused_without_the_subscribe_scope(bob, receiver, operation):
    created = subscribe(bob, receiver, after=0)
    every_other_scope = client_with_scopes(bob, "submit", "read", "match")

    response = operate(every_other_scope, operation, created["id"], receiver)

    assert (response.status_code, error_code(response)) == (403, "insufficient_scope")
    assert "subscribe" in response.json()["error"]["message"]
    assert [(str(pk), description) for pk, description in Subscription.objects.values_list("id", "description")] == [
        (created["id"], "")]
    assert not AuditEvent.objects.filter(action__in=["subscription.update", "subscription.test",
                                                      "subscription.replay", "subscription.delete"]).exists()


def test_every_subscription_operation_is_served_with_the_subscribe_scope_alone(bob, receiver):
    created = subscribe(bob, receiver, after=0)
    subscriber = client_with_scopes(bob, "subscribe")

    for operation in SUBSCRIPTION_OPERATIONS:
        response = operate(subscriber, operation, created["id"], receiver)
        assert response.status_code == operation[3], (operation, response.content)
    (remaining,) = Subscription.objects.all()  # the one POST made; the first one was deleted
    assert str(remaining.id) != created["id"]


@pytest.mark.parametrize(("target", "settings_override", "code"), [
    ("ftp://127.0.0.1/hooks", {}, "url_invalid_scheme"),
    ("http://user:pw@127.0.0.1/hooks", {}, "url_credentials_in_url"),
    ("http://127.0.0.1/hooks", {"WEBHOOK_REQUIRE_HTTPS": True}, "url_https_required"),
    ("https://127.0.0.1/hooks", {"WEBHOOK_ALLOW_PRIVATE_TARGETS": False}, "url_target_forbidden"),
    ("https://169.254.169.254/latest/meta-data", {"WEBHOOK_ALLOW_PRIVATE_TARGETS": False}, "url_target_forbidden"),
    ("https://[::1]/hooks", {"WEBHOOK_ALLOW_PRIVATE_TARGETS": False}, "url_target_forbidden"),
    ("https://nowhere.invalid/hooks", {}, "url_dns_failed"),
    ("", {}, "validation_error"),
])
def test_urls_are_refused_at_creation_with_stable_codes(bob, settings, target, settings_override, code):
    for name, value in settings_override.items():
        setattr(settings, name, value)

    response = bob.api.post("/api/v1/subscriptions/", {"url": target}, format="json")

    assert (response.status_code, error_code(response)) == (400, code)
    assert Subscription.objects.count() == 0


def test_a_new_url_is_checked_like_the_first(bob, receiver, settings):
    created = subscribe(bob, receiver)
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False

    response = bob.api.patch(url(created["id"]), {"url": "https://10.0.0.7/hooks"}, format="json")

    assert (response.status_code, error_code(response)) == (400, "url_target_forbidden")
    assert Subscription.objects.get().url == receiver.url


@pytest.mark.parametrize(("filters", "code"), [
    ({"signal_types": ["sha1"]}, "validation_error"),
    ({"labels": ["no-such-label"]}, "label_unknown"),
    ({"min_corroboration": 0}, "validation_error"),
    ({"colour": "red"}, "validation_error"),
    ({"incident_only": "maybe"}, "validation_error"),
])
def test_filters_are_checked(bob, receiver, filters, code):
    response = bob.api.post("/api/v1/subscriptions/", {"url": receiver.url, "filters": filters}, format="json")

    assert (response.status_code, error_code(response)) == (400, code)


@pytest.mark.parametrize("name", ["labels", "signal_types"])
def test_a_filter_list_is_bounded(bob, receiver, name):
    too_many = [f"label-{n}" for n in range(101)]

    response = bob.api.post("/api/v1/subscriptions/", {"url": receiver.url, "filters": {name: too_many}},
                            format="json")

    assert (response.status_code, error_code(response)) == (400, "validation_error")
    assert "no more than 100" in str(response.json()["error"]["details"])
    assert Subscription.objects.count() == 0


def test_an_over_long_list_is_refused_before_any_item_is_validated():
    checked = []

    class Counted(serializers.CharField):
        def to_internal_value(self, data):
            checked.append(data)
            return super().to_internal_value(data)

    field = BoundedListField(child=Counted(), max_length=3)
    with pytest.raises(serializers.ValidationError):
        field.run_validation(["a"] * 1000)

    assert checked == []
    assert field.run_validation(["a", "b"]) == ["a", "b"]


def test_the_service_bounds_filter_lists_and_the_unknown_labels_it_names(bob, receiver):
    with pytest.raises(DomainError) as too_long:
        check_filters({"labels": ["x"] * 101}, FILTER_DEFAULTS)
    with pytest.raises(DomainError) as unknown:
        check_filters({"labels": [f"no-such-label-{n}" for n in range(100)]}, FILTER_DEFAULTS)

    assert too_long.value.code == "filters_invalid"
    assert unknown.value.code == "label_unknown" and len(unknown.value.details["unknown"]) == 20


def test_patch_changes_only_the_filters_it_names_and_pauses_and_resumes(bob, receiver):
    created = subscribe(bob, receiver, filters={"signal_types": ["pdq"], "labels": ["recruitment"]})

    changed = bob.api.patch(url(created["id"]), {"filters": {"labels": []}, "state": "paused"}, format="json").json()
    resumed = bob.api.patch(url(created["id"]), {"state": "active"}, format="json").json()

    assert changed["filters"]["signal_types"] == ["pdq"] and changed["filters"]["labels"] == []
    assert (changed["state"], changed["state_reason"]) == ("paused", "member")
    assert (resumed["state"], resumed["state_reason"]) == ("active", "")
    response = bob.api.patch(url(created["id"]), {"state": "disabled"}, format="json")
    assert (response.status_code, error_code(response)) == (400, "validation_error")


def test_replay_cannot_skip_ahead_of_the_cursor(alice, bob, receiver, pipeline):
    created = subscribe(bob, receiver)

    response = bob.api.post(url(created["id"], "replay"), {"from_seq": 2}, format="json")

    assert (response.status_code, error_code(response)) == (400, "from_seq_invalid")


@pytest.mark.parametrize("too_far", [2**63, 10**30])
def test_positions_past_any_seq_are_refused_not_sent_to_the_database(bob, receiver, too_far):
    created = subscribe(bob, receiver)

    replay = bob.api.post(url(created["id"], "replay"), {"from_seq": too_far}, format="json")
    create = bob.api.post("/api/v1/subscriptions/", {"url": receiver.url, "after": too_far}, format="json")

    assert (replay.status_code, error_code(replay)) == (400, "validation_error")
    assert (create.status_code, error_code(create)) == (400, "validation_error")
    assert Subscription.objects.count() == 1


def test_a_member_has_a_bounded_number_of_subscriptions(bob, receiver, settings):
    settings.WEBHOOK_MAX_SUBSCRIPTIONS = 2
    subscribe(bob, receiver)
    subscribe(bob, receiver)

    response = bob.api.post("/api/v1/subscriptions/", {"url": receiver.url}, format="json")

    assert (response.status_code, error_code(response)) == (409, "subscription_limit_reached")


def test_every_change_is_audited_as_the_member_with_the_url_shorn_of_its_query(bob, receiver):
    created = subscribe(bob, receiver, filters={"labels": ["recruitment"]})
    bob.api.patch(url(created["id"]), {"url": receiver.url + "?token=t0p", "state": "paused"}, format="json")
    bob.api.post(url(created["id"], "replay"), {"from_seq": 1}, format="json")
    bob.api.post(url(created["id"], "test"))
    bob.api.delete(url(created["id"]))

    events = list(AuditEvent.objects.filter(object_id=created["id"]).order_by("id"))

    assert [e.action for e in events] == ["subscription.create", "subscription.update", "subscription.replay",
                                          "subscription.test", "subscription.delete"]
    assert all(e.actor_label == "member:bob" for e in events)
    assert events[1].before["state"] == "active" and events[1].after["state"] == "paused"
    assert "t0p" not in str([(e.before, e.after) for e in events])


def test_deliveries_are_listed_newest_first_with_their_attempts(alice, bob, receiver, pipeline, clock):
    from .helpers import drive

    created = subscribe(bob, receiver, after=0)
    alice.submit(alice.statement([md5(1)]))
    pipeline()
    drive(clock)
    bob.api.post(url(created["id"], "test"))
    drive(clock)

    listed = bob.api.get(url(created["id"], "deliveries") + "?limit=5").json()["deliveries"]

    assert [(d["lane"], d["state"], d["first_seq"]) for d in listed] == [("test", "delivered", None),
                                                                         ("main", "delivered", 1)]
    assert listed[1]["attempts"][0]["status"] == 200


def test_deliveries_report_status_and_timing_but_never_what_the_receiver_answered(
    admin_client, alice, bob, receiver, pipeline, clock,
):
    """With private targets allowed, a ping to an internal page would otherwise read that page back."""
    from .helpers import drive

    internal_page = b"<h1>intranet</h1> db_password=hunter2"
    receiver.behaviour.body = internal_page
    created = subscribe(bob, receiver, after=0)
    bob.api.post(url(created["id"], "test"))
    drive(clock)
    receiver.behaviour.status = 500
    alice.submit(alice.statement([md5(1)]))
    pipeline()
    drive(clock)

    response = bob.api.get(url(created["id"], "deliveries"))
    listed = response.json()["deliveries"]
    attempts = [attempt for delivery in listed for attempt in delivery["attempts"]]
    assert sorted((a["status"], a["error"]) for a in attempts) == [(200, ""), (500, "http_error")]
    assert all(a["duration_ms"] >= 0 and a["started_at"] for a in attempts)
    assert all(set(a) == {"number", "started_at", "duration_ms", "status", "error", "detail", "retry_after",
                          "next_attempt_at"} for a in attempts)
    assert b"hunter2" not in response.content
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM distribution_deliveryattempt")
        assert not any("hunter2" in str(column) for row in cursor.fetchall() for column in row)
    for delivery in listed:
        page = admin_client.get(reverse("admin:distribution_delivery_change", args=[delivery["id"]]))
        assert page.status_code == 200 and b"hunter2" not in page.content
