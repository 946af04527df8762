"""A signing key registered through POST keys/ remembers the API token that registered it. Revoking
that token (one found stolen) revokes the key while it is still pending, in the same transaction and
audited, so a thief's key is not left in the approval queue as the member's; a key an administrator
has already approved is theirs to judge, and stays."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from consortium.api.errors import CodedError
from consortium_client.keys import generate_private_key, public_jwk
from members.models import ApiToken, SigningKey
from members.services import key_register, key_set_state, token_create, token_revoke
from tests.actors import Actor


def register(api, kid: str) -> SigningKey:
    response = api.post("/api/v1/keys/", public_jwk(generate_private_key(), kid=kid), format="json")
    assert response.status_code == 201, response.content
    return SigningKey.objects.get(kid=kid)


def token_of(actor: Actor) -> ApiToken:
    return ApiToken.objects.get(member=actor.member)


def test_revoking_a_token_revokes_the_keys_it_registered_that_are_still_pending(alice, admin_client):
    thief_token = token_of(alice)
    other = token_create(member=alice.member, scopes=["submit"], name="build server")
    waiting = register(alice.api, "thief")
    approved = register(alice.api, "approved-earlier")
    key_set_state(key=approved, state="active")
    theirs = key_register(member=alice.member, jwk=public_jwk(generate_private_key(), kid="other-token"),
                          token=other.token)

    response = admin_client.post(reverse("admin:members_apitoken_changelist"),
                                 {"action": "revoke", "_selected_action": [thief_token.pk]})

    assert response.status_code == 302
    states = dict(SigningKey.objects.filter(pk__in=[waiting.pk, approved.pk, theirs.pk]).values_list("kid", "state"))
    assert states == {"thief": "revoked", "approved-earlier": "active", "other-token": "pending"}
    event = AuditEvent.objects.get(action="key.revoked", object_id=str(waiting.pk))
    assert (event.actor_label, event.before["state"], event.after) == (
        "admin:admin", "pending",
        {"member": "alice", "kid": "thief", "state": "revoked", "because": "token_revoked", "token": thief_token.prefix,
         "compromised_since": None})


def test_a_key_its_revoked_token_registered_can_no_longer_be_approved(alice):
    key = register(alice.api, "thief")
    token_revoke(token=token_of(alice))

    with pytest.raises(CodedError) as refused:
        key_set_state(key=key, state="active")

    assert refused.value.code == "key_transition_invalid"
    assert SigningKey.objects.get(pk=key.pk).state == "revoked"


def test_a_key_cannot_be_registered_with_a_token_revoked_since_the_request_was_authenticated(alice):
    """The request passed authentication, then an administrator revoked its token before the key was
    stored: the revocation must not miss it."""
    token = token_of(alice)
    token_revoke(token=token)

    with pytest.raises(CodedError) as refused:
        key_register(member=alice.member, jwk=public_jwk(generate_private_key(), kid="late"), actor=alice.member,
                     token=token)

    assert (refused.value.code, refused.value.status) == ("token_revoked", 401)
    assert not SigningKey.objects.filter(kid="late").exists()


def test_revoking_a_token_twice_changes_nothing_the_second_time(alice):
    """A guard (it passes before the change too)."""
    register(alice.api, "thief")
    token = token_of(alice)
    token_revoke(token=token)
    recorded = AuditEvent.objects.count()

    token_revoke(token=ApiToken.objects.get(pk=token.pk))

    assert AuditEvent.objects.count() == recorded


def test_the_admin_shows_which_token_registered_a_key(alice, admin_client):
    key = register(alice.api, "thief")
    token = token_of(alice)
    token_revoke(token=token)

    page = admin_client.get(reverse("admin:members_signingkey_changelist")).content.decode()
    detail = admin_client.get(reverse("admin:members_signingkey_change", args=[key.pk])).content.decode()

    for text in (page, detail):
        assert f"{token.prefix} (revoked)" in text
