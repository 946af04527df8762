"""Signing keys over the API: a key a member registers stays pending, and signs nothing, until an
administrator approves it in the admin; bad JWKs are refused with a precise code and store nothing;
the JWK Set publishes exactly the keys that verify statements; the server publishes its own key."""

from __future__ import annotations

import base64
import os
import stat
from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from consortium.server_keys import server_signing_key
from consortium_client import jws
from consortium_client.keys import generate_private_key, load_public_jwk, private_jwk, private_key_to_pem, public_jwk
from consortium_client.statements import StatementSigner, hash_statement
from members.models import SigningKey
from members.services import key_register, key_set_state
from tests.factories import md5


def register(actor, jwk: dict):
    return actor.api.post("/api/v1/keys/", jwk, format="json")


def approve_in_admin(admin_client, key: SigningKey) -> None:
    response = admin_client.post("/admin/members/signingkey/", {"action": "approve", "_selected_action": [key.pk]})
    assert response.status_code == 302, response.content


def published(api) -> dict[str, dict]:
    response = api.get("/api/v1/keys/")
    assert response.status_code == 200, response.content
    return {key["kid"]: key for key in response.json()["keys"]}


def payload_of(actor) -> dict:
    return hash_statement(iss=actor.slug, signals=[md5(42)], content_type="photo")


def state_of(actor, submitted: dict) -> dict:
    return actor.api.get(f"/api/v1/statements/{submitted['accepted'][0]['id']}/").json()


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code


# --- registration ----------------------------------------------------------------------------------

def test_a_registered_key_is_pending_and_not_published(alice, bob):
    jwk = public_jwk(generate_private_key())

    response = register(alice, jwk)

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["kid"], body["state"], body["jwk"]["x"]) == (jwk["kid"], "pending", jwk["x"])
    assert SigningKey.objects.get(kid=jwk["kid"]).member == alice.member
    assert jwk["kid"] not in published(bob.api)


def test_a_key_without_a_kid_is_named_by_its_thumbprint(alice):
    jwk = public_jwk(generate_private_key())

    response = register(alice, {k: v for k, v in jwk.items() if k != "kid"})

    assert response.json()["kid"] == jwk["kid"]


def test_a_statement_signed_with_a_pending_key_is_rejected_with_key_pending(alice, pipeline):
    private = generate_private_key()
    kid = register(alice, public_jwk(private)).json()["kid"]

    submitted = alice.submit(StatementSigner(private, kid).sign(payload_of(alice)))
    pipeline()

    statement = state_of(alice, submitted)
    assert (statement["state"], statement["rejection_code"]) == ("rejected", "key_pending")


def test_once_an_administrator_approves_a_key_its_statements_verify(alice, bob, pipeline, admin_client):
    private = generate_private_key()
    kid = register(alice, public_jwk(private)).json()["kid"]

    approve_in_admin(admin_client, SigningKey.objects.get(kid=kid))
    submitted = alice.submit(StatementSigner(private, kid).sign(payload_of(alice)))
    pipeline()

    assert SigningKey.objects.get(kid=kid).state == "active"
    assert published(bob.api)[kid]["state"] == "active"
    assert state_of(alice, submitted)["state"] == "published"


# --- the approval queue is bounded per member ------------------------------------------------------

def test_a_member_has_at_most_signing_key_max_pending_keys_waiting_for_approval(alice, bob, settings):
    settings.SIGNING_KEY_MAX_PENDING = 2
    for _ in range(2):
        assert register(alice, public_jwk(generate_private_key())).status_code == 201

    refused = register(alice, jwk := public_jwk(generate_private_key(), kid="one-too-many"))

    assert_error(refused, 409, "pending_key_limit_reached")
    assert refused.json()["error"]["details"] == {"max_pending": 2}
    assert not SigningKey.objects.filter(kid=jwk["kid"]).exists()
    assert SigningKey.objects.filter(member=alice.member, state="pending").count() == 2
    assert register(bob, public_jwk(generate_private_key())).status_code == 201  # each member its own


def test_once_a_pending_key_is_approved_or_revoked_another_may_be_registered(alice, settings):
    settings.SIGNING_KEY_MAX_PENDING = 1
    first = SigningKey.objects.get(kid=register(alice, public_jwk(generate_private_key())).json()["kid"])
    assert_error(register(alice, public_jwk(generate_private_key())), 409, "pending_key_limit_reached")

    key_set_state(key=first, state="revoked")

    assert register(alice, public_jwk(generate_private_key())).status_code == 201


# --- refused JWKs ----------------------------------------------------------------------------------

def test_a_jwk_holding_a_private_key_is_refused_and_nothing_is_stored(alice):
    jwk = private_jwk(generate_private_key())

    assert_error(register(alice, jwk), 400, "jwk_private_key")
    assert not SigningKey.objects.filter(public_key=jwk["x"]).exists()


@pytest.mark.parametrize("kty, crv", [("EC", "P-256"), ("OKP", "X25519"), ("OKP", "Ed448"), ("RSA", None)])
def test_a_key_that_is_not_ed25519_is_refused_with_jwk_unsupported(alice, kty, crv):
    jwk = {**public_jwk(generate_private_key()), "kty": kty, "crv": crv}

    assert_error(register(alice, jwk), 400, "jwk_unsupported")
    assert SigningKey.objects.count() == 1  # alice's own, from the fixture


@pytest.mark.parametrize("x", ["", "abc", "A" * 42, "A" * 44, "A" * 43 + "=", "A" * 42 + "+", 123, None])
def test_a_key_whose_x_is_not_32_bytes_of_base64url_is_refused_with_jwk_invalid(alice, x):
    assert_error(register(alice, {"kty": "OKP", "crv": "Ed25519", "x": x}), 400, "jwk_invalid")
    assert SigningKey.objects.count() == 1


@pytest.mark.parametrize("body", [[], "a string", {"kty": "OKP", "crv": "Ed25519", "x": "A" * 43, "kid": 7}])
def test_a_body_that_is_not_a_jwk_object_is_refused_with_jwk_invalid(alice, body):
    assert_error(register(alice, body), 400, "jwk_invalid")


def test_registering_the_same_key_twice_is_refused_with_key_exists(alice, bob):
    jwk = public_jwk(generate_private_key())
    register(alice, jwk)

    assert_error(register(alice, jwk), 409, "key_exists")
    assert_error(register(bob, {**jwk, "kid": "bobs-copy"}), 409, "key_exists")
    assert SigningKey.objects.filter(public_key=jwk["x"]).count() == 1


@pytest.mark.parametrize("kid", ["k\nforged", "k\x01", "<a href=x>k</a>", "two words", "\u0430lice-key", "k\u202e",
                                 "\x1b[2J", "k" * 129])
def test_a_kid_that_is_not_1_to_128_visible_ascii_characters_is_refused_with_jwk_invalid(alice, kid):
    jwk = public_jwk(generate_private_key(), kid=kid)

    assert_error(register(alice, jwk), 400, "jwk_invalid")
    assert SigningKey.objects.filter(member=alice.member).count() == 1  # alice's own, from the fixture


def test_a_kid_of_visible_ascii_punctuation_is_accepted(alice):
    kid = "acme:2026-01/key#1!~"
    response = register(alice, public_jwk(generate_private_key(), kid=kid))

    assert (response.status_code, response.json()["kid"]) == (201, kid)


def test_a_new_key_under_a_taken_kid_is_refused_with_kid_taken(alice, bob):
    jwk = public_jwk(generate_private_key(), kid=alice.key.kid)

    assert_error(register(bob, jwk), 409, "kid_taken")


def test_the_same_key_spelled_in_non_canonical_base64url_is_refused(alice):
    jwk = public_jwk(generate_private_key())
    register(alice, jwk)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(jwk["x"][-1])
    respelled = jwk["x"][:-1] + alphabet[last ^ 1]  # the last character's two unused bits
    assert base64.urlsafe_b64decode(respelled + "=") == base64.urlsafe_b64decode(jwk["x"] + "=")

    assert_error(register(alice, {"kty": "OKP", "crv": "Ed25519", "x": respelled}), 400, "jwk_invalid")
    assert SigningKey.objects.filter(member=alice.member).count() == 2  # the fixture's and the first


@pytest.mark.parametrize("x_hex", [
    "01" + "00" * 31,                  # the identity point: any message "verifies" with R=identity, S=0
    "ec" + "ff" * 30 + "7f",           # order 2
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
    "ee" + "ff" * 30 + "7f",           # not reduced modulo p
])
def test_a_small_order_or_non_canonical_point_is_refused(alice, x_hex):
    x = base64.urlsafe_b64encode(bytes.fromhex(x_hex)).rstrip(b"=").decode()

    assert_error(register(alice, {"kty": "OKP", "crv": "Ed25519", "x": x}), 400, "jwk_invalid")


# --- the members' JWK Set --------------------------------------------------------------------------

def test_the_jwk_set_lists_active_and_retired_keys_never_pending_or_revoked(alice, bob, charlie):
    key_set_state(key=bob.key, state="retired")
    key_set_state(key=charlie.key, state="revoked")
    pending = key_register(member=alice.member, jwk=public_jwk(generate_private_key()))

    keys = published(alice.api)

    assert {kid: (k["member"], k["state"]) for kid, k in keys.items()} == {
        alice.key.kid: ("alice", "active"), bob.key.kid: ("bob", "retired"),
    }
    assert pending.kid not in keys and charlie.key.kid not in keys
    assert all((k["kty"], k["crv"]) == ("OKP", "Ed25519") for k in keys.values())


def test_a_key_revoked_from_a_time_on_stays_published_for_what_it_signed_before(alice, bob):
    """A key revoked with compromised_since keeps its earlier statements live (tests/hashes/
    test_key_revocation.py): anyone must still verify them, so keys/ lists it, revoked, with the time."""
    since = timezone.now() - timedelta(days=1)
    key_set_state(key=bob.key, state="revoked", compromised_since=since)

    keys = published(alice.api)

    assert keys[bob.key.kid]["state"] == "revoked"
    assert parse_datetime(keys[bob.key.kid]["compromised_since"]) == since
    assert "compromised_since" not in keys[alice.key.kid]


def test_a_statement_verifies_against_the_published_key_of_its_kid(alice, bob):
    statement = alice.statement()
    parsed = jws.parse(statement)

    key = published(bob.api)[parsed.kid]

    assert key["member"] == "alice"
    assert jws.verify_signature(parsed, load_public_jwk(key))


# --- the server's own keys -------------------------------------------------------------------------

@pytest.fixture
def server_key_file(settings, tmp_path):
    """The server key the settings name; the loaded key is cached per process, so start and end clean."""
    settings.CONSORTIUM_SIGNING_KEY_FILE = tmp_path / "server-signing-key.pem"
    server_signing_key.cache_clear()
    yield settings.CONSORTIUM_SIGNING_KEY_FILE
    server_signing_key.cache_clear()


def test_the_server_jwks_is_public_and_serves_the_configured_ed25519_key(anonymous, server_key_file):
    key = generate_private_key()
    server_key_file.write_bytes(private_key_to_pem(key))

    response = anonymous.get("/.well-known/jwks.json")

    assert response.status_code == 200, response.content
    [served] = response.json()["keys"]
    assert (served["kty"], served["crv"], served["x"]) == ("OKP", "Ed25519", public_jwk(key)["x"])
    assert "d" not in served


def test_in_embedded_mode_the_server_key_is_created_on_first_use_readable_by_the_owner_only(
    anonymous, server_key_file, settings
):
    settings.CONSORTIUM_SIGNING_KEY_CREATE = True

    served = anonymous.get("/.well-known/jwks.json").json()["keys"][0]

    assert stat.S_IMODE(os.stat(server_key_file).st_mode) == 0o600
    assert served["x"] == public_jwk(server_signing_key())["x"]
