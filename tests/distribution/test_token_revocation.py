"""A subscription is answered for by the API token that set its URL (created it, or last changed the
URL). Revoking that token, one found stolen, disables it in the same transaction, audited: a thief's
subscription stops receiving the member's view, and only an administrator re-enables it, from its
cursor. A token that merely expires leaves its subscriptions alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from consortium.api.errors import CodedError
from distribution.models import Subscription
from distribution.services import subscriptions as subscription_services
from members.models import ApiToken
from members.services import token_create, token_revoke
from tests.actors import Actor
from tests.factories import md5

from .helpers import drive, subscribe
from .test_admin import act, admin_client  # noqa: F401  fixture


def second_token(actor: Actor) -> tuple[ApiToken, APIClient]:
    """Another token of the same member, as a second system of the member (or a thief) holds it."""
    issued = token_create(member=actor.member, scopes=["read", "subscribe"], name="second")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    return issued.token, api


def first_token(actor: Actor) -> ApiToken:
    return ApiToken.objects.get(member=actor.member, name="")


def hashes_received(receiver) -> list[str]:
    return [event["hash"]["value"] for event in receiver.events()]


def test_a_subscription_whose_token_is_revoked_receives_nothing_more(alice, bob, trusted_group, receiver, clock,
                                                                     pipeline):
    created = subscribe(alice, receiver, after=0)
    token_revoke(token=first_token(alice))

    bob.submit(bob.statement([md5(31337)], share="trusted"))  # the group's, which alice may see
    pipeline()
    drive(clock)

    assert hashes_received(receiver) == []
    subscription = Subscription.objects.get(pk=created["id"])
    assert (subscription.state, subscription.state_reason, subscription.cursor) == ("disabled", "token_revoked", 0)


def test_only_the_subscriptions_whose_url_the_revoked_token_set_are_disabled(alice, receiver_factory):
    thief_token, thief = second_token(alice)
    legitimate = subscribe(alice, receiver_factory())
    stolen = thief.post("/api/v1/subscriptions/", {"url": receiver_factory().url}, format="json").json()
    repointed = subscribe(alice, receiver_factory())  # alice's own, whose URL the thief then changes
    response = thief.patch(f"/api/v1/subscriptions/{repointed['id']}/", {"url": receiver_factory().url},
                           format="json")
    assert response.status_code == 200, response.content

    token_revoke(token=thief_token)

    states = dict(Subscription.objects.values_list("pk", "state_reason"))
    assert {str(pk): reason for pk, reason in states.items()} == {
        legitimate["id"]: "", stolen["id"]: "token_revoked", repointed["id"]: "token_revoked"}


def test_a_url_changed_back_by_another_token_is_no_longer_the_revoked_tokens(alice, receiver_factory):
    thief_token, thief = second_token(alice)
    kept = thief.post("/api/v1/subscriptions/", {"url": receiver_factory().url}, format="json").json()
    taken_back = thief.post("/api/v1/subscriptions/", {"url": receiver_factory().url}, format="json").json()
    alice.api.patch(f"/api/v1/subscriptions/{taken_back['id']}/", {"url": receiver_factory().url}, format="json")

    token_revoke(token=thief_token)

    assert Subscription.objects.get(pk=kept["id"]).state == "disabled"
    assert Subscription.objects.get(pk=taken_back["id"]).state == "active"


def test_the_member_cannot_re_enable_it_but_an_administrator_can_and_nothing_is_skipped(
    admin_client, alice, bob, receiver, clock, pipeline,
):
    created = subscribe(alice, receiver, after=0)
    _, other = second_token(alice)
    token_revoke(token=first_token(alice))
    bob.submit(bob.statement([md5(1)]))
    pipeline()
    drive(clock)

    response = other.patch(f"/api/v1/subscriptions/{created['id']}/", {"state": "active"}, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (409, "disabled_by_token_revocation")
    assert hashes_received(receiver) == []

    act(admin_client, "reenable", Subscription.objects.get(pk=created["id"]))
    drive(clock)
    assert hashes_received(receiver) == [md5(1)["value"]]


def test_revoking_in_the_admin_disables_them_in_the_same_audited_change(admin_client, alice, receiver):
    created = subscribe(alice, receiver)
    token = first_token(alice)

    response = admin_client.post(reverse("admin:members_apitoken_changelist"),
                                 {"action": "revoke", "_selected_action": [token.pk]})

    assert response.status_code == 302
    event = AuditEvent.objects.get(action="subscription.disable", object_id=created["id"])
    assert (event.actor_label, event.before["state"], event.after["state"], event.after["state_reason"],
            event.after["token"]) == ("admin:admin", "active", "disabled", "token_revoked", token.prefix)
    assert AuditEvent.objects.get(action="token.revoke").id < event.id


def test_the_admin_shows_which_token_set_a_subscriptions_url(admin_client, alice, receiver):
    created = subscribe(alice, receiver)
    token = first_token(alice)
    token_revoke(token=token)

    page = admin_client.get(reverse("admin:distribution_subscription_changelist")).content.decode()
    detail = admin_client.get(reverse("admin:distribution_subscription_change", args=[created["id"]])).content.decode()

    for text in (page, detail):
        assert f"{token.prefix} (revoked)" in text


def test_a_subscription_cannot_be_made_with_a_token_revoked_since_the_request_was_authenticated(alice, receiver):
    """The request passed authentication, then an administrator revoked its token before the
    subscription was stored: the revocation must not miss it."""
    token = first_token(alice)
    token_revoke(token=token)

    with pytest.raises(CodedError) as refused:
        subscription_services.subscription_create(member=alice.member, url=receiver.url, actor=alice.member,
                                                  token=token)

    assert (refused.value.code, refused.value.status) == ("token_revoked", 401)
    assert not Subscription.objects.exists()


def test_an_expired_token_leaves_its_subscriptions_delivering(alice, bob, receiver, clock, pipeline):
    """A guard (it passes before the change too): expiry is routine rotation, not a compromise."""
    created = subscribe(alice, receiver, after=0)
    ApiToken.objects.filter(member=alice.member).update(expires_at=timezone.now() - timedelta(seconds=1))

    bob.submit(bob.statement([md5(2)]))
    pipeline()
    drive(clock)

    assert Subscription.objects.get(pk=created["id"]).state == "active"
    assert hashes_received(receiver) == [md5(2)["value"]]


def test_a_member_cannot_re_enable_a_token_revoked_subscription_by_pausing_it_first(alice, receiver_factory):
    """Found by review: pausing set the reason to the member's, and resuming then succeeded."""
    thief_token, thief = second_token(alice)
    stolen = thief.post("/api/v1/subscriptions/", {"url": receiver_factory().url}, format="json").json()
    token_revoke(token=thief_token)
    path = f"/api/v1/subscriptions/{stolen['id']}/"

    paused = alice.api.patch(path, {"state": "paused"}, format="json")
    resumed = alice.api.patch(path, {"state": "active"}, format="json")

    assert (paused.status_code, resumed.status_code) == (409, 409)
    assert paused.json()["error"]["code"] == "disabled_by_token_revocation"
    assert Subscription.objects.get(pk=stolen["id"]).state == Subscription.State.DISABLED
