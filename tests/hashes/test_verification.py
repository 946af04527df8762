"""Verification: every check of DESIGN.md fails with its own stable code and publishes nothing."""

from __future__ import annotations

import json
import time

import pytest
from django.test import override_settings

from consortium_client import jws, keys
from consortium_client.statements import StatementSigner, hash_statement
from hashes.models import Event, Hash, Incident, Statement
from members.models import Member, SigningKey
from members.services import key_register, key_set_state, member_set_status
from tests.factories import md5, pdq, vpdq


def outcome(actor, statement: str, pipeline) -> Statement:
    body = actor.submit(statement)
    assert body["rejected"] == [], body
    pipeline()
    return Statement.objects.get(id=body["accepted"][0]["id"])


def payload(actor, **fields):
    """A valid hash statement with `fields` set as given, however wrong they are."""
    body = hash_statement(iss=actor.slug, signals=[md5(1)], content_type="photo")
    body.update(fields)
    return body


def assert_rejected(actor, statement, pipeline, code):
    row = outcome(actor, statement, pipeline)
    assert (row.state, row.rejection_code) == ("rejected", code), row.rejection_message
    assert Hash.objects.count() == 0 and Event.objects.count() == 0
    api_view = actor.api.get(f"/api/v1/statements/{row.id}/").json()
    assert api_view["state"] == "rejected" and api_view["rejection_code"] == code


def test_an_unknown_kid_is_rejected_on_receipt(alice, pipeline):
    """Bytes that no key can ever verify are not stored (tests/hashes/test_junk.py)."""
    stranger = StatementSigner(keys.generate_private_key(), "no-such-key")
    body = alice.submit(stranger.sign(payload(alice)))
    assert body["accepted"] == [] and [r["error"]["code"] for r in body["rejected"]] == ["key_unknown"]
    assert not Statement.objects.exists()


def test_another_members_kid_is_rejected(alice, bob, pipeline):
    assert_rejected(alice, bob.signer.sign(payload(alice)), pipeline, "key_wrong_member")


def test_a_signature_by_another_key_under_my_kid_is_rejected(alice, pipeline):
    forger = StatementSigner(keys.generate_private_key(), alice.key.kid)
    assert_rejected(alice, forger.sign(payload(alice)), pipeline, "signature_invalid")


def test_a_tampered_payload_is_rejected(alice, pipeline):
    header, _, signature = alice.signer.sign(payload(alice)).split(".")
    tampered = jws.b64url_encode(jws.json.dumps(payload(alice, signals=[md5(666)])).encode())
    assert_rejected(alice, f"{header}.{tampered}.{signature}", pipeline, "signature_invalid")


@pytest.mark.parametrize("state,code", [("pending", "key_pending"), ("revoked", "key_revoked")])
def test_a_key_that_may_not_sign_is_rejected(alice, pipeline, state, code):
    private = keys.generate_private_key()
    key = key_register(member=alice.member, jwk=keys.public_jwk(private))
    if state == "revoked":
        key_set_state(key=key, state=SigningKey.State.REVOKED)
    assert_rejected(alice, StatementSigner(private, key.kid).sign(payload(alice)), pipeline, code)


def test_a_retired_key_signs_nothing_new(alice, pipeline):
    key_set_state(key=alice.key, state=SigningKey.State.RETIRED)
    assert_rejected(alice, alice.statement(), pipeline, "key_retired")


def test_statements_received_before_a_key_was_retired_stay_valid(alice, pipeline):
    body = alice.submit(alice.statement())
    key_set_state(key=alice.key, state=SigningKey.State.RETIRED)
    pipeline()
    assert Statement.objects.get(id=body["accepted"][0]["id"]).state == "published"


def test_a_statement_of_a_member_suspended_before_verification_is_rejected(alice, pipeline):
    body = alice.submit(alice.statement())
    member_set_status(member=alice.member, status=Member.Status.SUSPENDED)
    pipeline()
    assert Statement.objects.get(id=body["accepted"][0]["id"]).rejection_code == "member_suspended"


@pytest.mark.parametrize("iat,code", [
    (lambda: int(time.time()) + 3600, "iat_in_future"),
    (lambda: "yesterday", "iat_invalid"),
    (lambda: True, "iat_invalid"),
    (lambda: 10**15, "iat_invalid"),
])
def test_a_bad_iat_is_rejected(alice, pipeline, iat, code):
    assert_rejected(alice, alice.signer.sign(payload(alice, iat=iat())), pipeline, code)


def test_an_iat_a_little_in_the_future_is_tolerated(alice, pipeline):
    row = outcome(alice, alice.signer.sign(payload(alice, iat=int(time.time()) + 120)), pipeline)
    assert row.state == "published"


BAD_SIGNALS = [
    ("no signals", [], "signals_missing"),
    ("signals not a list", "md5", "signals_missing"),
    ("signal not an object", ["abc"], "signal_invalid"),
    ("unknown type", [{"type": "sha1", "value": "a" * 40}], "signal_type_unknown"),
    ("md5 too short", [{"type": "md5", "value": "a" * 31}], "signal_value_invalid"),
    ("md5 not hex", [{"type": "md5", "value": "z" * 32}], "signal_value_invalid"),
    ("sha256 wrong length", [{"type": "sha256", "value": "a" * 32}], "signal_value_invalid"),
    ("pdq wrong length", [{"type": "pdq", "value": "a" * 63, "quality": 90}], "signal_value_invalid"),
    ("pdq value a number", [{"type": "pdq", "value": 12, "quality": 90}], "signal_value_invalid"),
    ("pdq without quality", [{"type": "pdq", "value": "a" * 64}], "quality_invalid"),
    ("pdq quality over 100", [pdq(1, quality=101)], "quality_invalid"),
    ("pdq quality too low", [pdq(1, quality=49)], "quality_too_low"),
    ("vpdq without frames", [{"type": "vpdq", "frames": []}], "vpdq_frames_invalid"),
    ("vpdq frames missing", [{"type": "vpdq"}], "vpdq_frames_invalid"),
    ("vpdq frame without pdq", [{"type": "vpdq", "frames": [{"i": 0, "t": 0, "q": 90}]}], "signal_value_invalid"),
    ("vpdq frame bad index", [{"type": "vpdq", "frames": [{"i": -1, "t": 0, "pdq": "a" * 64, "q": 90}]}],
     "vpdq_frames_invalid"),
    ("vpdq duplicate index", [{"type": "vpdq", "frames": [{"i": 0, "t": 0, "pdq": "a" * 64, "q": 90}] * 2}],
     "vpdq_frames_invalid"),
    ("vpdq frame not an object", [{"type": "vpdq", "frames": ["a" * 64]}], "vpdq_frames_invalid"),
    ("vpdq every frame too poor", [vpdq(1, 2, quality=10)], "quality_too_low"),
]


@pytest.mark.parametrize("case,signals,code", BAD_SIGNALS, ids=[c[0] for c in BAD_SIGNALS])
def test_a_malformed_signal_is_rejected(alice, pipeline, case, signals, code):
    assert_rejected(alice, alice.signer.sign(payload(alice, signals=signals)), pipeline, code)


def test_a_malformed_signal_rejects_the_whole_statement(alice, pipeline):
    statement = alice.signer.sign(payload(alice, signals=[md5(1), {"type": "md5", "value": "xyz"}]))
    assert_rejected(alice, statement, pipeline, "signal_value_invalid")


@pytest.mark.parametrize("fields,code", [
    ({"labels": ["no-such-label"]}, "label_unknown"),
    ({"labels": "glorification"}, "labels_invalid"),
    ({"content_type": "audio"}, "content_type_invalid"),
    ({"incident": "no-such-incident"}, "incident_unknown"),
    ({"share": "no-such-group"}, "share_not_allowed"),
    ({"note": 42}, "note_invalid"),
])
def test_bad_statement_fields_are_rejected(alice, pipeline, fields, code):
    assert_rejected(alice, alice.signer.sign(payload(alice, **fields)), pipeline, code)


def test_a_closed_incident_is_rejected(alice, pipeline):
    Incident.objects.create(slug="old", name="Old", state=Incident.State.CLOSED)
    assert_rejected(alice, alice.statement(incident="old"), pipeline, "incident_closed")


def test_a_sharing_group_the_member_is_not_in_is_rejected(charlie, trusted_group, pipeline):
    assert_rejected(charlie, charlie.statement(share="trusted"), pipeline, "share_not_allowed")


@override_settings(STATEMENT_NOTE_MAX_CHARS=10)
def test_an_overlong_note_is_rejected(alice, pipeline):
    assert_rejected(alice, alice.statement(note="x" * 11), pipeline, "note_invalid")


@override_settings(PDQ_MIN_QUALITY=80)
def test_the_pdq_quality_minimum_is_a_setting(alice, pipeline):
    assert_rejected(alice, alice.statement([pdq(1, quality=79)]), pipeline, "quality_too_low")


def test_every_signal_type_verifies_and_publishes(alice, pipeline):
    row = outcome(alice, alice.statement([md5(1), pdq(2), vpdq(3, 4), {"type": "sha256", "value": "A" * 64}]), pipeline)
    assert row.state == "published"
    assert sorted(Hash.objects.values_list("signal_type", flat=True)) == ["md5", "pdq", "sha256", "vpdq"]
    assert Hash.objects.get(signal_type="sha256").value == "a" * 64  # hex is stored in lower case


def sign_with_header(actor, body: dict, **header) -> str:
    """A statement signed by the actor's key under a protected header of the test's choosing."""
    protected = {"alg": "Ed25519", "kid": actor.signer.kid, "typ": "hash-statement+jws", **header}
    signing_input = ".".join(jws.b64url_encode(json.dumps(part, separators=(",", ":")).encode())
                             for part in (protected, body))
    return f"{signing_input}.{jws.b64url_encode(actor.signer.private_key.sign(signing_input.encode()))}"


def test_a_statement_signed_under_the_rfc_8037_name_eddsa_publishes(alice, pipeline):
    row = outcome(alice, sign_with_header(alice, payload(alice), alg="EdDSA"), pipeline)
    assert row.state == "published"


def test_a_tampered_eddsa_statement_is_rejected(alice, pipeline):
    header, _, signature = sign_with_header(alice, payload(alice), alg="EdDSA").split(".")
    tampered = jws.b64url_encode(json.dumps(payload(alice, signals=[md5(666)])).encode())
    assert_rejected(alice, f"{header}.{tampered}.{signature}", pipeline, "signature_invalid")


def test_a_critical_header_extension_is_refused_on_receipt(alice):
    answer = alice.submit(sign_with_header(alice, payload(alice), crit=["exp"], exp=2_000_000_000))
    assert [r["error"]["code"] for r in answer["rejected"]] == ["jws_bad_header"]
    assert Statement.objects.count() == 0
