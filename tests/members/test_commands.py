"""Operator commands: `member add|token|key|revoke-key` print only their result, so they compose in shell
scripts, and fail with a CommandError that starts with the stable error code; `bootstrap_demo`
creates working demo credentials on an empty database and never a second time."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from consortium_client.keys import generate_private_key, load_private_jwk, private_jwk, public_jwk
from consortium_client.statements import StatementSigner, hash_statement
from hashes.models import Statement
from members.models import ApiToken, Member, SigningKey
from tests.factories import md5


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def me(token: str):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api.get("/api/v1/me/")


def refused(*args: str) -> str:
    with pytest.raises(CommandError) as error:
        run(*args)
    return str(error.value)


# --- member add ------------------------------------------------------------------------------------

def test_member_add_prints_only_the_slug(db):
    assert run("member", "add", "acme", "--name", "Acme Video", "--kind", "platform") == "acme\n"

    member = Member.objects.get(slug="acme")
    assert (member.name, member.kind, member.status) == ("Acme Video", "platform", "active")


def test_member_add_refuses_a_taken_slug_with_member_exists(alice):
    assert refused("member", "add", "alice", "--name", "Again", "--kind", "ngo").startswith("member_exists:")
    assert Member.objects.get(slug="alice").kind == "platform"


@pytest.mark.parametrize("slug, name", [("not a slug!", "Fine"), ("fine", "x" * 201)], ids=["bad-slug", "long-name"])
def test_member_add_refuses_an_invalid_slug_or_name_with_a_command_error(db, slug, name):
    refused("member", "add", slug, "--name", name, "--kind", "ngo")
    assert not Member.objects.exists()


# --- member token ----------------------------------------------------------------------------------

def test_member_token_prints_only_a_token_that_authenticates(alice):
    output = run("member", "token", "alice", "--scopes", "read")

    token = output.strip()
    assert output == token + "\n" and " " not in token
    response = me(token)
    assert response.status_code == 200, response.content
    assert (response.json()["slug"], response.json()["scopes"]) == ("alice", ["read"])


def test_member_token_gives_the_subscribe_scope_only_when_asked(alice):
    default = run("member", "token", "alice").strip()
    asked = run("member", "token", "alice", "--scopes", "read,subscribe").strip()

    assert me(default).json()["scopes"] == ["match", "read", "submit"]
    assert me(asked).json()["scopes"] == ["read", "subscribe"]


def test_member_token_with_expires_days_sets_an_expiry(alice):
    token = run("member", "token", "alice", "--expires-days", "30").strip()

    issued = ApiToken.objects.get(prefix=token.split("_")[1])
    assert issued.expires_at is not None
    assert sorted(issued.scopes) == ["match", "read", "submit"]


def test_member_token_refuses_an_unknown_member_with_member_unknown(db):
    assert refused("member", "token", "nobody").startswith("member_unknown:")
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("scopes", ["admin", "", "read,everything"])
def test_member_token_refuses_unknown_scopes_with_token_scope_invalid(alice, scopes):
    assert refused("member", "token", "alice", "--scopes", scopes).startswith("token_scope_invalid:")


# --- member key ------------------------------------------------------------------------------------

def test_member_key_with_approve_prints_only_the_kid_of_an_active_key(alice):
    jwk = public_jwk(generate_private_key(), kid="alice-2026")

    assert run("member", "key", "alice", "--jwk", json.dumps(jwk), "--approve") == "alice-2026\n"

    key = SigningKey.objects.get(kid="alice-2026")
    assert (key.member, key.state) == (alice.member, "active")


def test_member_key_without_approve_leaves_the_key_pending(alice):
    jwk = public_jwk(generate_private_key())

    kid = run("member", "key", "alice", "--jwk", json.dumps(jwk)).strip()

    assert SigningKey.objects.get(kid=kid).state == "pending"


@pytest.mark.parametrize("jwk, code", [
    ("{not json", "jwk_invalid"),
    (json.dumps({"kty": "OKP", "crv": "Ed25519", "x": "short"}), "jwk_invalid"),
    (json.dumps({"kty": "EC", "crv": "P-256", "x": "A" * 43}), "jwk_unsupported"),
    (json.dumps(private_jwk(generate_private_key())), "jwk_private_key"),
])
def test_member_key_refuses_a_bad_jwk_with_its_code_and_stores_nothing(alice, jwk, code):
    assert refused("member", "key", "alice", "--jwk", jwk, "--approve").startswith(f"{code}:")
    assert SigningKey.objects.filter(member=alice.member).count() == 1


def test_member_key_refuses_an_unknown_member_with_member_unknown(db):
    jwk = json.dumps(public_jwk(generate_private_key()))

    assert refused("member", "key", "nobody", "--jwk", jwk, "--approve").startswith("member_unknown:")
    assert not SigningKey.objects.exists()


def test_member_key_refuses_a_key_registered_already_with_key_exists(alice):
    assert refused("member", "key", "alice", "--jwk", json.dumps(alice.key.jwk())).startswith("key_exists:")


# --- member revoke-key -----------------------------------------------------------------------------

def test_member_revoke_key_withdraws_what_it_signed_from_compromised_since(alice, bob, pipeline,
                                                                          django_capture_on_commit_callbacks):
    alice.submit(alice.statement([md5(1)], jti="old"), alice.statement([md5(2)], jti="new"))
    bob.submit(bob.statement([md5(2)], jti="b1"))
    pipeline()
    Statement.objects.filter(jti="old").update(received_at=timezone.now() - timedelta(days=2))
    since = (timezone.now() - timedelta(days=1)).isoformat()

    with django_capture_on_commit_callbacks(execute=True):
        assert run("member", "revoke-key", "--compromised-since", since, "--", alice.key.kid) == f"{alice.key.kid}\n"

    assert SigningKey.objects.get(pk=alice.key.pk).state == "revoked"
    codes = dict(Statement.objects.filter(member__in=[alice.member, bob.member]).values_list("jti", "rejection_code"))
    assert codes == {"old": "", "new": "key_revoked", "b1": ""}


@pytest.mark.parametrize("since", ["yesterday", "2026-11-30T18:00:00", "2999-01-01T00:00:00Z"])
def test_member_revoke_key_refuses_a_bad_time_and_changes_nothing(alice, since):
    assert refused("member", "revoke-key", "--compromised-since", since, "--", alice.key.kid).startswith(
        "compromised_since_invalid:")
    assert SigningKey.objects.get(pk=alice.key.pk).state == "active"


def test_member_revoke_key_refuses_an_unknown_kid(db):
    assert refused("member", "revoke-key", "nope").startswith("key_unknown:")


# --- bootstrap_demo --------------------------------------------------------------------------------

DEMO_SLUGS = {"demo-platform": "platform", "home-office": "government"}


def test_bootstrap_demo_creates_an_administrator_and_two_members_with_working_credentials(db, client, pipeline):
    output = run("bootstrap_demo")

    password = re.search(r"Administrator: admin / (\S+)", output)[1]
    assert get_user_model().objects.get(username="admin").is_superuser
    assert client.login(username="admin", password=password)
    assert {m.slug: m.kind for m in Member.objects.all()} == DEMO_SLUGS
    tokens = re.findall(r"API token:\s+(\S+)", output)
    private_keys = [json.loads(k) for k in re.findall(r"signing key: (\{.*\})", output)]
    assert len(tokens) == len(private_keys) == 2
    for slug, token, private in zip(DEMO_SLUGS, tokens, private_keys):
        assert me(token).json()["slug"] == slug
        assert SigningKey.objects.get(kid=private["kid"]).state == "active"
        assert a_statement_signed_with(private, slug, token, pipeline) == "published"


def a_statement_signed_with(private: dict, slug: str, token: str, pipeline) -> str:
    signer = StatementSigner(load_private_jwk(private), private["kid"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    statement = signer.sign(hash_statement(iss=slug, signals=[md5(len(slug))], content_type="photo"))
    submission = api.post("/api/v1/statements/", {"statements": [statement]}, format="json").json()
    pipeline()
    return api.get(f"/api/v1/statements/{submission['accepted'][0]['id']}/").json()["state"]


def test_bootstrap_demo_does_nothing_the_second_time(db):
    run("bootstrap_demo")
    counts = (Member.objects.count(), get_user_model().objects.count(), ApiToken.objects.count(),
              SigningKey.objects.count())

    output = run("bootstrap_demo")

    assert "not created" in output and "API token" not in output
    assert (Member.objects.count(), get_user_model().objects.count(), ApiToken.objects.count(),
            SigningKey.objects.count()) == counts


def test_bootstrap_demo_does_nothing_when_a_member_exists(alice):
    run("bootstrap_demo")

    assert list(Member.objects.values_list("slug", flat=True)) == ["alice"]
    assert not get_user_model().objects.exists()


def test_bootstrap_demo_does_nothing_when_an_administrator_exists(db):
    get_user_model().objects.create_superuser("root", "root@example.org", None)

    run("bootstrap_demo")

    assert not Member.objects.exists()
    assert list(get_user_model().objects.values_list("username", flat=True)) == ["root"]
