"""API tokens: stored only as a digest, accepted with either scheme, refused with a precise code when
missing, unknown, revoked, expired, under-scoped or held by a suspended member, and `me/` tells the
caller who it is."""

from __future__ import annotations

import hashlib
import importlib
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from hashes.models import Statement
from members.models import ApiToken, Member
from members.services import member_set_status, token_create, token_revoke
from tests.actors import token_secret
from tests.members.routes import api_routes, sample_path


def client_with(authorization: str | None) -> APIClient:
    api = APIClient()
    if authorization is not None:
        api.credentials(HTTP_AUTHORIZATION=authorization)
    return api


def token_for(member: Member, *scopes: str, **options) -> str:
    return token_create(member=member, scopes=scopes, **options).plaintext


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code


# --- storage ---------------------------------------------------------------------------------------

def test_only_the_sha256_digest_of_a_token_is_stored(alice):
    issued = token_create(member=alice.member, scopes=["read"])
    secret = token_secret(issued.plaintext)

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM members_apitoken WHERE id = %s", [issued.token.pk])
        row = cursor.fetchone()

    assert issued.token.digest == hashlib.sha256(issued.plaintext.encode()).hexdigest()
    assert not any(secret in str(column) for column in row)


def test_every_token_is_different(alice):
    assert token_for(alice.member, "read") != token_for(alice.member, "read")


# --- schemes ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["Bearer", "Token", "bearer"])
def test_a_token_authenticates_with_either_scheme(alice, scheme):
    response = client_with(f"{scheme} {alice.token}").get("/api/v1/me/")

    assert response.status_code == 200, response.content
    assert response.json()["slug"] == "alice"


@pytest.mark.parametrize("authorization", [None, "Basic YWxpY2U6c2VjcmV0"])
def test_a_request_without_a_token_is_refused_with_not_authenticated_and_a_challenge(db, authorization):
    response = client_with(authorization).get("/api/v1/me/")

    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


# --- refusals --------------------------------------------------------------------------------------

@pytest.mark.parametrize("credential", [
    "cst_000000000000_not-a-token",
    "garbage",
    "cst__",
    "tökén",
])
def test_an_unknown_or_garbled_token_is_refused_with_invalid_token(alice, credential):
    response = client_with(f"Bearer {credential}").get("/api/v1/me/")

    assert_error(response, 401, "invalid_token")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("authorization", ["Bearer", "Bearer two parts"])
def test_a_malformed_authorization_header_is_refused_with_invalid_token(db, authorization):
    assert_error(client_with(authorization).get("/api/v1/me/"), 401, "invalid_token")


def test_a_valid_token_followed_by_anything_more_is_refused_with_invalid_token(alice):
    assert_error(client_with(f"Bearer {alice.token} {alice.token}").get("/api/v1/me/"), 401, "invalid_token")

def test_a_real_prefix_with_the_wrong_secret_is_refused_with_invalid_token(alice):
    tampered = alice.token[:-4] + ("AAAA" if not alice.token.endswith("AAAA") else "BBBB")

    assert_error(client_with(f"Bearer {tampered}").get("/api/v1/me/"), 401, "invalid_token")


def test_a_revoked_token_is_refused_with_token_revoked(alice):
    token_revoke(token=ApiToken.objects.get(member=alice.member))

    assert_error(alice.api.get("/api/v1/me/"), 401, "token_revoked")


def test_an_expired_token_is_refused_with_token_expired(alice):
    expired = token_for(alice.member, "read", expires_at=timezone.now() - timedelta(seconds=1))

    assert_error(client_with(f"Bearer {expired}").get("/api/v1/me/"), 401, "token_expired")


def test_a_token_that_has_not_expired_yet_works(alice):
    later = token_for(alice.member, "read", expires_at=timezone.now() + timedelta(hours=1))

    assert client_with(f"Bearer {later}").get("/api/v1/me/").status_code == 200


# --- scopes ----------------------------------------------------------------------------------------

def test_a_read_only_token_cannot_submit_statements_and_nothing_is_stored(alice):
    reader = client_with(f"Bearer {token_for(alice.member, 'read')}")

    response = reader.post("/api/v1/statements/", {"statements": [alice.statement()]}, format="json")

    assert_error(response, 403, "insufficient_scope")
    assert not Statement.objects.exists()


def test_a_read_only_token_cannot_register_a_signing_key(alice):
    reader = client_with(f"Bearer {token_for(alice.member, 'read')}")

    response = reader.post("/api/v1/keys/", {"kty": "OKP", "crv": "Ed25519", "x": "A" * 43}, format="json")

    assert_error(response, 403, "insufficient_scope")


@pytest.mark.parametrize("path", ["/api/v1/feed/", "/api/v1/statements/", "/api/v1/keys/", "/api/v1/hashes/1/"])
def test_a_submit_only_token_cannot_read(alice, path):
    submitter = client_with(f"Bearer {token_for(alice.member, 'submit')}")

    assert_error(submitter.get(path), 403, "insufficient_scope")


@pytest.mark.parametrize("path", ["/api/v1/statements/", "/api/v1/keys/"])
def test_a_submit_only_token_cannot_read_with_head_either(alice, path):
    alice.submit(alice.statement())
    submitter = client_with(f"Bearer {token_for(alice.member, 'submit')}")

    assert submitter.head(path).status_code == 403


def test_tokens_issued_before_the_subscribe_scope_keep_managing_subscriptions_and_new_ones_must_ask(alice):
    from django.apps import apps

    migration = importlib.import_module("members.migrations.0002_subscribe_scope_for_read_tokens")
    reader = token_create(member=alice.member, scopes=["read", "match"])
    submitter = token_create(member=alice.member, scopes=["submit"]).token

    migration.grant_subscribe_to_read_tokens(apps, None)

    reader.token.refresh_from_db()
    submitter.refresh_from_db()
    assert (reader.token.scopes, submitter.scopes) == (["match", "read", "subscribe"], ["submit"])
    assert client_with(f"Bearer {reader.plaintext}").get("/api/v1/subscriptions/").status_code == 200
    new_reader = client_with(f"Bearer {token_for(alice.member, 'read')}")
    assert_error(new_reader.get("/api/v1/subscriptions/"), 403, "insufficient_scope")
    assert client_with(f"Bearer {token_for(alice.member, 'read', 'subscribe')}").get(
        "/api/v1/subscriptions/").status_code == 200


# --- suspension ------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("route", api_routes())
def test_a_suspended_member_is_refused_on_every_endpoint(alice, route, method):
    member_set_status(member=alice.member, status=Member.Status.SUSPENDED)

    response = getattr(alice.api, method)(sample_path(route))

    assert_error(response, 403, "member_suspended")


def test_a_reactivated_member_is_served_again(alice):
    member_set_status(member=alice.member, status=Member.Status.SUSPENDED)
    member_set_status(member=alice.member, status=Member.Status.ACTIVE)

    assert alice.api.get("/api/v1/me/").status_code == 200


# --- last use and identity -------------------------------------------------------------------------

def test_using_a_token_records_when_it_was_last_used(alice):
    token = ApiToken.objects.get(member=alice.member)
    assert token.last_used_at is None
    before = timezone.now()

    alice.api.get("/api/v1/me/")

    token.refresh_from_db()
    assert token.last_used_at is not None and token.last_used_at >= before


def test_me_describes_the_calling_member_its_scopes_and_groups(homeoffice, trusted_group):
    trusted_group.members.add(homeoffice.member)
    api = client_with(f"Bearer {token_for(homeoffice.member, 'read', 'match')}")

    body = api.get("/api/v1/me/").json()

    assert body == {
        "slug": "homeoffice", "name": "Homeoffice", "kind": "government", "status": "active",
        "scopes": ["match", "read"], "sharing_groups": ["trusted"],
    }


def test_me_lists_no_groups_for_a_member_outside_them(charlie, trusted_group):
    body = charlie.api.get("/api/v1/me/").json()

    assert (body["slug"], body["kind"], body["sharing_groups"]) == ("charlie", "platform", [])
    assert body["scopes"] == ["match", "read", "submit", "subscribe"]
