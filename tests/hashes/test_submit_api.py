"""POST /api/v1/statements/: request-level errors, envelope checks on receipt, idempotency by jti."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from consortium_client.statements import hash_statement
from hashes.models import Statement
from tests.factories import b64, forge, md5


def post(actor, body, **kwargs):
    return actor.api.post("/api/v1/statements/", body, format="json", **kwargs)


def test_it_answers_202_with_one_submission_id_per_statement(alice):
    body = alice.submit(alice.statement([md5(1)]), alice.statement([md5(2)]))

    assert [a["index"] for a in body["accepted"]] == [0, 1]
    assert all(a["state"] == "received" for a in body["accepted"])
    assert body["rejected"] == []
    assert Statement.objects.filter(member=alice.member).count() == 2


def test_resubmitting_the_same_statement_returns_the_same_submission(alice, pipeline):
    statement = alice.statement([md5(1)])
    first = alice.submit(statement)["accepted"][0]
    pipeline()

    again = alice.submit(statement)["accepted"][0]

    assert again["id"] == first["id"]
    assert again["state"] == "published"
    assert Statement.objects.count() == 1


def test_a_replayed_jti_with_different_content_is_rejected(alice):
    alice.submit(alice.statement([md5(1)], jti="once"))

    body = alice.submit(alice.statement([md5(2)], jti="once"))

    assert body["accepted"] == []
    assert body["rejected"][0]["error"]["code"] == "jti_conflict"
    assert Statement.objects.get(jti="once").signals is None  # the stored one is untouched


def test_the_same_jti_twice_in_one_batch_is_stored_once(alice):
    statement = alice.statement([md5(1)], jti="twin")
    body = alice.submit(statement, statement, alice.statement([md5(2)], jti="twin"))

    assert body["accepted"][0]["id"] == body["accepted"][1]["id"]
    assert body["rejected"][0]["index"] == 2 and body["rejected"][0]["error"]["code"] == "jti_conflict"
    assert Statement.objects.count() == 1


GOOD_HEADER = {"alg": "Ed25519", "kid": "k", "typ": "hash-statement+jws"}


def payload(**overrides):
    body = hash_statement(iss="alice", signals=[md5(1)], content_type="photo")
    body.update(overrides)
    return body


ENVELOPE_CASES = [
    ("not a JWS", lambda: "hello", "jws_malformed"),
    ("four parts", lambda: "a.b.c.d", "jws_malformed"),
    ("an empty part", lambda: b64(GOOD_HEADER) + ".." + b64(b"\0" * 64), "jws_malformed"),
    ("bad base64 header", lambda: "!!!." + b64(payload()) + "." + b64(b"\0" * 64), "jws_bad_base64"),
    ("bad base64 signature", lambda: b64(GOOD_HEADER) + "." + b64(payload()) + ".*&^", "jws_bad_base64"),
    ("padded base64", lambda: b64(GOOD_HEADER) + "=." + b64(payload()) + "." + b64(b"\0" * 64), "jws_bad_base64"),
    ("header not JSON", lambda: b64(b"nope") + "." + b64(payload()) + "." + b64(b"\0" * 64), "jws_bad_header"),
    ("alg none", lambda: forge({**GOOD_HEADER, "alg": "none"}, payload()), "alg_not_allowed"),
    ("alg HS256", lambda: forge({**GOOD_HEADER, "alg": "HS256"}, payload()), "alg_not_allowed"),
    ("alg missing", lambda: forge({"kid": "k"}, payload()), "alg_not_allowed"),
    ("wrong typ", lambda: forge({**GOOD_HEADER, "typ": "JWT"}, payload()), "typ_invalid"),
    ("no kid", lambda: forge({"alg": "Ed25519"}, payload()), "kid_missing"),
    ("payload not JSON", lambda: b64(GOOD_HEADER) + "." + b64(b"[1,") + "." + b64(b"\0" * 64), "payload_malformed"),
    ("payload a list", lambda: b64(GOOD_HEADER) + "." + b64(b"[1]") + "." + b64(b"\0" * 64), "payload_malformed"),
    ("short signature", lambda: forge(GOOD_HEADER, payload(), b"\0" * 10), "signature_invalid"),
    ("iss of another member", lambda: forge(GOOD_HEADER, payload(iss="bob")), "iss_mismatch"),
    ("no jti", lambda: forge(GOOD_HEADER, {k: v for k, v in payload().items() if k != "jti"}), "jti_invalid"),
    ("jti too long", lambda: forge(GOOD_HEADER, payload(jti="x" * 201)), "jti_invalid"),
    ("jti with a newline", lambda: forge(GOOD_HEADER, payload(jti="a\nb")), "jti_invalid"),
    ("jti with a tab", lambda: forge(GOOD_HEADER, payload(jti="a\tb")), "jti_invalid"),
    ("jti with markup and a space", lambda: forge(GOOD_HEADER, payload(jti="<img src=x>")), "jti_invalid"),
    ("jti with an escape", lambda: forge(GOOD_HEADER, payload(jti="\x1b[31mred")), "jti_invalid"),
    ("jti with a non-ASCII look-alike", lambda: forge(GOOD_HEADER, payload(jti="\u0430bc")), "jti_invalid"),
    ("jti with a bidi override", lambda: forge(GOOD_HEADER, payload(jti="ab\u202ec")), "jti_invalid"),
    ("kid with a newline", lambda: forge({**GOOD_HEADER, "kid": "k\nforged log line"}, payload()), "kid_missing"),
    ("kid with a DEL", lambda: forge({**GOOD_HEADER, "kid": "k\x7f"}, payload()), "kid_missing"),
    ("kid with markup and a space", lambda: forge({**GOOD_HEADER, "kid": "<b>k</b> x"}, payload()), "kid_missing"),
    ("kid too long", lambda: forge({**GOOD_HEADER, "kid": "k" * 129}, payload()), "kid_missing"),
    ("unknown kind", lambda: forge(GOOD_HEADER, payload(kind="delete")), "kind_invalid"),
    ("kind not a string", lambda: forge(GOOD_HEADER, payload(kind=["hash"])), "kind_invalid"),
    ("kind an object", lambda: forge(GOOD_HEADER, payload(kind={"hash": 1})), "kind_invalid"),
    ("not a string", lambda: {"jws": "x"}, "statement_not_string"),
]


@pytest.mark.parametrize("case,make,code", ENVELOPE_CASES, ids=[c[0] for c in ENVELOPE_CASES])
def test_a_statement_with_a_broken_envelope_is_rejected_and_not_stored(alice, case, make, code):
    body = alice.submit(alice.statement([md5(9)]), make())

    assert len(body["accepted"]) == 1
    assert body["rejected"] == [{"index": 1, "error": {"code": code, "message": body["rejected"][0]["error"]["message"]}}]
    assert Statement.objects.count() == 1


@override_settings(STATEMENT_MAX_BYTES=300)
def test_an_oversized_statement_is_rejected(alice):
    body = alice.submit(alice.statement([md5(1)], note="x" * 400))

    assert body["rejected"][0]["error"]["code"] == "statement_too_large"


@pytest.mark.parametrize("body,status,code", [
    ({}, 400, "statements_missing"),
    ({"statements": "abc"}, 400, "statements_missing"),
    ([], 400, "statements_missing"),
    ({"statements": []}, 400, "statements_empty"),
    ({"statements": ["x"] * 1001}, 413, "too_many_statements"),
])
def test_a_malformed_request_is_refused_whole(alice, body, status, code):
    response = post(alice, body)

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert Statement.objects.count() == 0


def test_a_body_that_is_not_json_is_refused(alice):
    response = alice.api.post("/api/v1/statements/", "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"


def test_a_body_that_is_not_declared_json_is_refused(alice):
    response = alice.api.post("/api/v1/statements/", "statements=x", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unsupported_media_type"


@override_settings(REQUEST_MAX_BYTES=10_000)
def test_an_oversized_body_is_refused_with_413(alice):
    body = json.dumps({"statements": [alice.statement([md5(1)], note="y" * 20_000)]})

    response = alice.api.post("/api/v1/statements/", body, content_type="application/json")

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert Statement.objects.count() == 0


def test_every_statement_kind_has_its_payload_fields_and_no_other_kind_is_taken():
    """check_envelope tells a kind by PAYLOAD_FIELDS (Statement.Kind's values, without the list
    Django builds at every use): the two must name the same kinds."""
    from hashes.models import Statement
    from hashes.services.submission import PAYLOAD_FIELDS

    assert set(PAYLOAD_FIELDS) == set(Statement.Kind.values)
