"""The subscriptions API at its edges: a subscription deleted while a request waits is a 404, a PATCH
that changes nothing writes nothing and an unknown field is refused, deliveries page back through
their whole history, pings go one at a time and never for a suspended member, and what an
administrator paused only an administrator resumes."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from consortium.api.errors import DomainError, NotFound
from distribution import apis
from distribution.delivery.signing import new_message_id
from distribution.models import Delivery, Subscription
from distribution.services.subscriptions import subscription_set_state, subscription_test
from tests.databases import postgresql_only

from .helpers import subscribe


def url(subscription_id: str, action: str = "") -> str:
    return f"/api/v1/subscriptions/{subscription_id}/" + (f"{action}/" if action else "")


def error_code(response) -> str:
    return response.json()["error"]["code"]


def audit_actions(subscription_id: str) -> list[str]:
    return list(AuditEvent.objects.filter(object_id=subscription_id).order_by("id").values_list("action", flat=True))


@pytest.fixture
def administrator(django_user_model):
    return django_user_model.objects.create_superuser("admin", "admin@example.org", None)


def make_deliveries(subscription_id: str, count: int) -> list[int]:
    """Finished pings, oldest first: enough history to page through without sending anything."""
    now = timezone.now()
    return [Delivery.objects.create(subscription_id=subscription_id, lane=Delivery.Lane.TEST,
                                    state=Delivery.State.DELIVERED, webhook_id=new_message_id(), created_at=now,
                                    finished_at=now).pk
            for _ in range(count)]


# A DELETE racing another request

@pytest.mark.parametrize(("method", "action", "body"), [
    ("patch", "", {"state": "paused"}),
    ("patch", "", {"rotate_secret": True}),
    ("post", "replay", {"from_seq": 1}),
    ("post", "test", None),
])
def test_a_subscription_deleted_while_a_request_waits_answers_404_not_500(
    bob, receiver, monkeypatch, method, action, body,
):
    created = subscribe(bob, receiver)
    read = apis.subscription_get

    def read_then_lose_the_race(**kwargs):
        subscription = read(**kwargs)
        Subscription.objects.filter(pk=subscription.pk).delete()  # another request's DELETE commits here
        return subscription

    monkeypatch.setattr(apis, "subscription_get", read_then_lose_the_race)

    response = getattr(bob.api, method)(url(created["id"], action), body, format="json")

    assert (response.status_code, error_code(response)) == (404, "not_found")
    assert not Delivery.objects.exists()
    assert audit_actions(created["id"]) == ["subscription.create"]


def test_an_administrators_action_on_a_subscription_deleted_meanwhile_is_not_found(bob, receiver, administrator):
    subscription = Subscription.objects.get(pk=subscribe(bob, receiver)["id"])
    Subscription.objects.filter(pk=subscription.pk).delete()

    with pytest.raises(NotFound):
        subscription_set_state(subscription=subscription, state=Subscription.State.PAUSED, actor=administrator)


# PATCH that changes nothing, and unknown fields

def test_an_empty_patch_changes_nothing_and_records_nothing(bob, receiver, django_capture_on_commit_callbacks):
    created = subscribe(bob, receiver)
    shown = bob.api.get(url(created["id"])).json()

    with django_capture_on_commit_callbacks() as callbacks:
        response = bob.api.patch(url(created["id"]), {}, format="json")

    assert response.status_code == 200 and response.json() == shown
    assert callbacks == []  # no wake
    assert audit_actions(created["id"]) == ["subscription.create"]


def test_a_patch_repeating_the_current_values_touches_neither_the_subscription_nor_its_batch_in_flight(
    bob, receiver, django_capture_on_commit_callbacks,
):
    created = subscribe(bob, receiver, description="SOC", filters={"labels": ["recruitment"]})
    retry_at = timezone.now() + timedelta(hours=2)
    batch = Delivery.objects.create(subscription_id=created["id"], lane=Delivery.Lane.MAIN, webhook_id="msg_waiting",
                                    after_seq=0, through_seq=3, failures=4, next_attempt_at=retry_at)
    same = {"url": receiver.url, "description": "SOC", "filters": {"labels": ["recruitment"], "incident_only": False},
            "state": "active", "rotate_secret": False, "secret_overlap_seconds": 60}

    with django_capture_on_commit_callbacks() as callbacks:
        response = bob.api.patch(url(created["id"]), same, format="json")

    assert response.status_code == 200 and "secret" not in response.json()
    assert response.json()["updated_at"] == created["updated_at"] and callbacks == []
    assert audit_actions(created["id"]) == ["subscription.create"]
    batch.refresh_from_db()
    assert (batch.failures, batch.next_attempt_at) == (4, retry_at)


def test_a_patch_that_changes_something_is_still_saved_audited_and_woken(
    bob, receiver, django_capture_on_commit_callbacks,
):
    created = subscribe(bob, receiver)

    with django_capture_on_commit_callbacks() as callbacks:
        changed = bob.api.patch(url(created["id"]), {"description": "new"}, format="json").json()

    assert changed["description"] == "new" and changed["updated_at"] != created["updated_at"]
    assert len(callbacks) == 1
    assert audit_actions(created["id"]) == ["subscription.create", "subscription.update"]


@pytest.mark.parametrize("body", [{"colour": "red"}, {"state": "paused", "rotate_secrets": True}])
def test_an_unknown_field_is_refused_and_changes_nothing(bob, receiver, body):
    created = subscribe(bob, receiver)

    response = bob.api.patch(url(created["id"]), body, format="json")

    assert (response.status_code, error_code(response)) == (400, "field_unknown")
    assert response.json()["error"]["details"] == {"unknown": sorted(set(body) - {"state"})}
    assert Subscription.objects.get().state == "active"
    assert audit_actions(created["id"]) == ["subscription.create"]


# Paging through deliveries

def test_deliveries_page_back_through_the_whole_history_until_next_before_is_null(bob, receiver):
    created = subscribe(bob, receiver)
    ids = make_deliveries(created["id"], 5)

    pages, before = [], None
    while True:
        page = bob.api.get(url(created["id"], "deliveries"), {"limit": 2, **({"before": before} if before else {})})
        assert page.status_code == 200
        pages.append([d["id"] for d in page.json()["deliveries"]])
        before = page.json()["next_before"]
        if before is None:
            break

    assert pages == [ids[4:2:-1], ids[2:0:-1], ids[:1]]
    first = bob.api.get(url(created["id"], "deliveries"), {"limit": 1}).json()["deliveries"][0]
    assert {"webhook_id", "lane", "state", "first_seq", "last_seq", "event_count", "created_at", "failures",
            "next_attempt_at", "finished_at", "attempts"} <= set(first)


def test_a_full_last_page_says_there_is_nothing_older(bob, receiver):
    created = subscribe(bob, receiver)
    ids = make_deliveries(created["id"], 2)

    page = bob.api.get(url(created["id"], "deliveries"), {"limit": 2}).json()

    assert ([d["id"] for d in page["deliveries"]], page["next_before"]) == (ids[::-1], None)


def test_pages_do_not_shift_while_new_deliveries_are_made(bob, receiver):
    created = subscribe(bob, receiver)
    ids = make_deliveries(created["id"], 4)
    first = bob.api.get(url(created["id"], "deliveries"), {"limit": 2}).json()

    make_deliveries(created["id"], 3)
    second = bob.api.get(url(created["id"], "deliveries"), {"limit": 2, "before": first["next_before"]}).json()

    assert [d["id"] for d in second["deliveries"]] == [ids[1], ids[0]] and second["next_before"] is None


@pytest.mark.parametrize("before", ["0", "-3", "x", "1.5", str(2**63), "9" * 30])
def test_before_is_a_delivery_id(bob, receiver, before):
    created = subscribe(bob, receiver)

    response = bob.api.get(url(created["id"], "deliveries"), {"before": before})

    assert (response.status_code, error_code(response)) == (400, "validation_error")


def test_another_members_deliveries_cannot_be_paged_into(bob, charlie, receiver):
    bobs = subscribe(bob, receiver)
    charlies = subscribe(charlie, receiver)
    make_deliveries(bobs["id"], 3)

    page = charlie.api.get(url(charlies["id"], "deliveries"), {"before": 10**9}).json()

    assert page == {"deliveries": [], "next_before": None}


# Test pings

def test_a_second_ping_is_refused_while_the_first_waits_to_be_sent(bob, receiver):
    created = subscribe(bob, receiver)
    first = bob.api.post(url(created["id"], "test"))

    refused = bob.api.post(url(created["id"], "test"))

    assert first.status_code == 202
    assert (refused.status_code, error_code(refused)) == (409, "test_in_flight")
    assert Delivery.objects.filter(lane=Delivery.Lane.TEST).count() == 1
    assert audit_actions(created["id"]) == ["subscription.create", "subscription.test"]
    Delivery.objects.filter(pk=first.json()["id"]).update(state=Delivery.State.FAILED, next_attempt_at=None)
    assert bob.api.post(url(created["id"], "test")).status_code == 202


@postgresql_only("needs PostgreSQL: SQLite locks the whole database, not the subscription's row")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_pings_racing_for_one_subscription_make_one_delivery(bob, receiver):
    subscription = Subscription.objects.get(pk=subscribe(bob, receiver)["id"])
    first_made = threading.Event()
    outcomes: list[str] = []

    def first() -> None:
        try:
            with transaction.atomic():
                subscription_test(subscription=subscription)
                outcomes.append("first queued")
                first_made.set()
                time.sleep(0.5)  # the second request arrives before this one commits
        finally:
            connection.close()

    def second() -> None:
        try:
            first_made.wait(10)
            subscription_test(subscription=subscription)
            outcomes.append("second queued")
        except DomainError as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes == ["first queued", "test_in_flight"]
    assert Delivery.objects.filter(lane=Delivery.Lane.TEST).count() == 1


def test_a_ping_of_one_subscription_does_not_hold_up_another(bob, receiver):
    one, other = subscribe(bob, receiver), subscribe(bob, receiver)

    assert bob.api.post(url(one["id"], "test")).status_code == 202
    assert bob.api.post(url(other["id"], "test")).status_code == 202


@pytest.mark.parametrize(("state", "reason"), [("paused", "member"), ("paused", "admin"),
                                               ("disabled", "retries_exhausted"), ("disabled", "endpoint_gone")])
def test_a_ping_goes_out_whatever_the_subscriptions_state_so_a_receiver_can_be_checked_first(
    bob, receiver, state, reason,
):
    created = subscribe(bob, receiver)
    Subscription.objects.filter(pk=created["id"]).update(state=state, state_reason=reason)

    response = bob.api.post(url(created["id"], "test"))

    assert response.status_code == 202 and response.json()["state"] == "pending"


def test_no_ping_goes_out_for_a_suspended_member(bob, receiver):
    created = subscribe(bob, receiver)
    subscription = Subscription.objects.get(pk=created["id"])
    bob.member.status = bob.member.Status.SUSPENDED
    bob.member.save()

    response = bob.api.post(url(created["id"], "test"))
    with pytest.raises(DomainError) as refused:  # the service refuses too, whoever calls it
        subscription_test(subscription=subscription)

    assert (response.status_code, error_code(response)) == (403, "member_suspended")
    assert (refused.value.status, refused.value.code) == (403, "member_suspended")
    assert not Delivery.objects.exists()


# What an administrator paused

def test_a_member_cannot_resume_what_an_administrator_paused(bob, receiver, administrator):
    created = subscribe(bob, receiver)
    subscription_set_state(subscription=Subscription.objects.get(pk=created["id"]), state="paused",
                           actor=administrator)
    shown = bob.api.get(url(created["id"])).json()

    refused = bob.api.patch(url(created["id"]), {"state": "active"}, format="json")
    refused_with_more = bob.api.patch(url(created["id"]), {"state": "active", "description": "x"}, format="json")

    assert (shown["state"], shown["state_reason"]) == ("paused", "admin")
    assert (refused.status_code, error_code(refused)) == (409, "paused_by_admin")
    assert (refused_with_more.status_code, error_code(refused_with_more)) == (409, "paused_by_admin")
    assert bob.api.get(url(created["id"])).json() == shown
    assert audit_actions(created["id"]) == ["subscription.create", "subscription.pause"]


def test_a_member_may_change_the_rest_of_an_administrators_pause_but_not_take_it_over(bob, receiver, administrator):
    created = subscribe(bob, receiver)
    subscription_set_state(subscription=Subscription.objects.get(pk=created["id"]), state="paused",
                           actor=administrator)

    changed = bob.api.patch(url(created["id"]), {"description": "new", "state": "paused"}, format="json").json()

    assert (changed["description"], changed["state"], changed["state_reason"]) == ("new", "paused", "admin")


def test_an_administrator_resumes_its_own_pause_in_the_admin(client, bob, receiver, administrator):
    created = subscribe(bob, receiver)
    subscription_set_state(subscription=Subscription.objects.get(pk=created["id"]), state="paused",
                           actor=administrator)
    client.force_login(administrator)

    client.post(reverse("admin:distribution_subscription_changelist"),
                {"action": "reenable", "_selected_action": [created["id"]]})

    shown = bob.api.get(url(created["id"])).json()
    assert (shown["state"], shown["state_reason"]) == ("active", "")


@pytest.mark.parametrize("reason", ["retries_exhausted", "endpoint_gone", "member"])
def test_a_member_resumes_what_the_server_disabled_and_its_own_pause(bob, receiver, reason):
    created = subscribe(bob, receiver)
    state = "paused" if reason == "member" else "disabled"
    Subscription.objects.filter(pk=created["id"]).update(state=state, state_reason=reason)

    resumed = bob.api.patch(url(created["id"]), {"state": "active"}, format="json")

    assert resumed.status_code == 200
    assert (resumed.json()["state"], resumed.json()["state_reason"]) == ("active", "")
