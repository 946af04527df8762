"""Input built to break things: strict JSON in signed statements and request bodies, text no
database column can hold, one statement that the database refuses, canonical encodings."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from consortium_client import jws
from hashes.models import Statement
from tests.factories import b64, md5

HEADER = {"alg": "Ed25519", "kid": "k", "typ": "hash-statement+jws"}


def with_payload(actor, payload_json: str) -> str:
    """A statement with the payload bytes exactly as given, signed properly by the actor."""
    header = b64(json.dumps({**HEADER, "kid": actor.key.kid}).encode())
    signing_input = f"{header}.{b64(payload_json.encode())}"
    return f"{signing_input}.{b64(actor.signer.private_key.sign(signing_input.encode()))}"


def base_payload(actor, **extra) -> dict:
    return {"iss": actor.slug, "iat": 1_700_000_000, "jti": "j1", "kind": "hash", "signals": [md5(1)],
            "content_type": "photo", **extra}


@pytest.mark.parametrize("name,mutate", [
    ("duplicate key", lambda p: p[:-1] + ', "share": "consortium", "share": "x"}'),
    ("NaN", lambda p: p[:-1] + ', "extra": NaN}'),
    ("Infinity", lambda p: p[:-1] + ', "extra": -Infinity}'),
    ("NUL in a note", lambda p: p[:-1] + ', "note": "a\\u0000b"}'),
    ("lone surrogate in a note", lambda p: p[:-1] + ', "note": "\\ud800"}'),
    ("nested too deeply", lambda p: p[:-1] + ', "extra": ' + "[" * 100_000 + "]" * 100_000 + "}"),
])
def test_a_payload_that_strict_json_refuses_is_rejected_on_receipt(alice, name, mutate):
    statement = with_payload(alice, mutate(json.dumps(base_payload(alice))))

    body = alice.submit(statement)

    assert body["rejected"][0]["error"]["code"] == "payload_malformed"
    assert Statement.objects.count() == 0


def test_a_header_with_a_nul_in_kid_is_rejected(alice):
    header = b64(b'{"alg":"Ed25519","kid":"a\\u0000b"}')
    statement = f"{header}.{b64(json.dumps(base_payload(alice)).encode())}.{b64(bytes(64))}"

    assert alice.submit(statement)["rejected"][0]["error"]["code"] == "jws_bad_header"


def test_a_signature_spelled_with_other_unused_bits_is_rejected(alice):
    statement = alice.statement([md5(1)])
    head, payload, signature = statement.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    respelled = signature[:-1] + alphabet[alphabet.index(signature[-1]) ^ 1]

    body = alice.submit(f"{head}.{payload}.{respelled}")

    assert body["rejected"][0]["error"]["code"] == "jws_bad_base64"


@pytest.mark.parametrize("raw", [
    '{"statements": ["\\ud800"]}',
    '{"statements": ["a"], "statements": ["b"]}',
    '{"statements": ' + "[" * 100_000 + "]" * 100_000 + "}",
])
def test_a_request_body_that_strict_json_refuses_is_a_400(alice, raw):
    response = alice.api.post("/api/v1/statements/", raw, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"


def test_a_key_id_no_column_can_hold_is_a_400(alice):
    response = alice.api.post("/api/v1/keys/", '{"kty":"OKP","crv":"Ed25519","x":"a","kid":"\\u0000"}',
                              content_type="application/json")

    assert response.status_code == 400 and response.json()["error"]["code"] == "malformed_json"


@pytest.mark.parametrize("token", ["cst_0123456789ab_\x00", "cst_" + "x" * 500, "cst_zz_zz"])
def test_a_malformed_token_is_an_invalid_token(anonymous, db, token):
    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    response = anonymous.get("/api/v1/me/")

    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_token"


@pytest.fixture
def poisoned_notes():
    """Make the database itself refuse to store one statement: a real error from a real database."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE hashes_statement ADD CONSTRAINT poison CHECK (note <> 'poison')")
        else:
            cursor.execute("CREATE TRIGGER poison BEFORE UPDATE ON hashes_statement WHEN NEW.note = 'poison' "
                           "BEGIN SELECT RAISE(ABORT, 'poison'); END")
    yield


def test_a_statement_the_database_refuses_does_not_hold_up_its_batch(alice, bob, poisoned_notes, pipeline):
    alice.submit(alice.statement([md5(1)]), alice.statement([md5(2)], note="poison"), alice.statement([md5(3)]))
    bob.submit(bob.statement([md5(4)]))

    pipeline()

    assert sorted(Statement.objects.values_list("state", flat=True)) == ["published"] * 3 + ["rejected"]
    poisoned = Statement.objects.get(state="rejected")
    assert poisoned.rejection_code == "statement_unprocessable"
    assert jws.parse(poisoned.raw).payload["note"] == "poison"
