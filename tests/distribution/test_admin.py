"""Administrators watch delivery health and act on subscriptions in the admin: re-enable, pause,
replay, delete; each action is audited as the administrator, and no page shows a secret."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from distribution.models import Delivery, Subscription
from distribution.services.subscriptions import url_for_display
from tests.factories import md5

from .helpers import advance_to_next_attempt, drive, subscribe


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("admin", "admin@example.org", None))
    return client


def changelist() -> str:
    return reverse("admin:distribution_subscription_changelist")


def act(admin_client, action: str, *subscriptions, **extra):
    data = {"action": action, "_selected_action": [s.pk for s in subscriptions], **extra}
    return admin_client.post(changelist(), data)


@pytest.fixture
def failing(alice, bob, receiver, clock, pipeline):
    """bob's subscription, disabled after its receiver failed every retry."""
    created = subscribe(bob, receiver, after=0)
    alice.submit(*[alice.statement([md5(n)]) for n in range(3)])
    pipeline()
    receiver.behaviour.status = 503
    drive(clock)
    for _ in range(9):
        advance_to_next_attempt(clock, created["id"])
        drive(clock)
    return Subscription.objects.get(pk=created["id"])


def test_the_list_shows_delivery_health_and_no_secret(admin_client, failing, receiver):
    page = admin_client.get(changelist()).content.decode()
    detail = admin_client.get(reverse("admin:distribution_subscription_change", args=[failing.pk])).content.decode()

    assert failing.state == "disabled"
    for text in ("disabled", "retries_exhausted", "http_error HTTP 503", ">10<", ">3<"):
        assert text in page, text
    assert receiver.secrets[0].removeprefix("whsec_") not in page + detail
    assert failing.secret_encrypted not in page + detail
    delivery = Delivery.objects.get()
    assert delivery.webhook_id in detail
    assert admin_client.get(reverse("admin:distribution_delivery_change", args=[delivery.pk])).status_code == 200


def test_re_enabling_in_the_admin_resumes_delivery_from_the_cursor_and_is_audited(
    admin_client, failing, receiver, clock,
):
    receiver.behaviour.status = 200

    act(admin_client, "reenable", failing)
    drive(clock)

    failing.refresh_from_db()
    assert (failing.state, failing.cursor) == ("active", 3)
    assert [e["seq"] for e in receiver.events()] == [1, 2, 3]
    event = AuditEvent.objects.get(action="subscription.reenable")
    assert (event.actor_label, event.before["state"], event.after["state"]) == ("admin:admin", "disabled", "active")


def test_pausing_in_the_admin_stops_delivery_and_is_audited(admin_client, alice, bob, receiver, clock, pipeline):
    subscription = Subscription.objects.get(pk=subscribe(bob, receiver, after=0)["id"])

    act(admin_client, "pause", subscription)
    alice.submit(alice.statement([md5(1)]))
    pipeline()
    drive(clock)

    subscription.refresh_from_db()
    assert (subscription.state, subscription.state_reason) == ("paused", "admin")
    assert receiver.received == []
    assert AuditEvent.objects.get(action="subscription.pause").actor_label == "admin:admin"


def test_replay_in_the_admin_asks_for_a_seq_then_sends_again_and_is_audited(
    admin_client, alice, bob, receiver, clock, pipeline,
):
    subscription = Subscription.objects.get(pk=subscribe(bob, receiver, after=0)["id"])
    alice.submit(*[alice.statement([md5(n)]) for n in range(4)])
    pipeline()
    drive(clock)

    form = act(admin_client, "replay", subscription)
    act(admin_client, "replay", subscription, from_seq=2, apply="Replay")
    drive(clock)

    assert form.status_code == 200 and b'name="from_seq"' in form.content
    assert [e["seq"] for e in receiver.events()] == [1, 2, 3, 4, 2, 3, 4]
    event = AuditEvent.objects.get(action="subscription.replay")
    assert (event.actor_label, event.after["from_seq"]) == ("admin:admin", 2)


def test_deleting_in_the_admin_is_audited_without_the_secret(admin_client, bob, receiver):
    subscription = Subscription.objects.get(pk=subscribe(bob, receiver)["id"])

    admin_client.post(changelist(), {"action": "delete_selected", "_selected_action": [subscription.pk],
                                     "post": "yes"})

    assert not Subscription.objects.exists()
    event = AuditEvent.objects.get(action="subscription.delete")
    assert event.actor_label == "admin:admin" and "secret" not in str(event.before)


def test_webhook_urls_are_shown_with_their_query_secrets_hidden_and_stay_unchanged(admin_client, bob, receiver):
    secret_url = receiver.url + "?token=s3cr3t-t0ken&team=blue#frag-s3cr3t"
    created = subscribe(bob, receiver)
    Subscription.objects.filter(pk=created["id"]).update(url=secret_url)

    listing = admin_client.get(changelist()).content.decode()
    detail = admin_client.get(reverse("admin:distribution_subscription_change", args=[created["id"]])).content.decode()
    searched = admin_client.get(changelist(), {"q": "s3cr3t"}).content.decode()

    shown = f"{receiver.url}?token=***&amp;team=***#***"
    assert shown in listing and shown in detail
    assert "s3cr3t" not in listing + detail and "blue" not in listing + detail
    assert "0 results" in searched  # the URL is not searchable, so a search cannot probe its secrets
    assert Subscription.objects.get(pk=created["id"]).url == secret_url


@pytest.mark.parametrize(("url", "shown"), [
    ("https://host.example/hook?token=abc", "https://host.example/hook?token=***"),
    ("https://host.example/hook?a=1&b=&c", "https://host.example/hook?a=***&b=***&***"),
    ("https://user:pw@host.example:8443/hook", "https://***@host.example:8443/hook"),
    ("https://host.example/hook#key", "https://host.example/hook#***"),
    ("https://host.example/hook", "https://host.example/hook"),
    ("http://[::1", "***"),
])
def test_url_for_display_hides_user_info_query_values_and_fragment(url, shown):
    assert url_for_display(url) == shown
