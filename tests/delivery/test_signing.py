"""The server's Standard Webhooks signer, checked by the `standardwebhooks` package (v1) and by the
member-side verifier (v1 and v1a)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import pytest
import standardwebhooks
from consortium_client import webhooks
from consortium_client.keys import public_jwk
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from distribution.delivery import signing

BODY = b'{"type":"events","timestamp":"2026-01-01T00:00:00Z","data":{"first_seq":1,"last_seq":2,"events":[]}}'
MSG_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"


def _sign(signer: signing.Signer, *, timestamp: int | None = None, body: bytes = BODY) -> dict[str, str]:
    return signer.headers(MSG_ID, int(time.time()) if timestamp is None else timestamp, body)


def _standard_ok(secret: str, headers: dict[str, str], body: bytes = BODY) -> bool:
    try:
        standardwebhooks.Webhook(secret).verify(body, headers, json_parse=False)
    except standardwebhooks.WebhookVerificationError:
        return False
    return True


def _ours(headers: dict[str, str], body: bytes = BODY, **options: Any) -> str:
    """The verifier's webhook-id, or its error code."""
    try:
        return webhooks.verify(headers, body, **options)
    except webhooks.WebhookVerificationError as exc:
        return exc.code


def test_generated_secrets_are_whsec_and_base64_of_32_fresh_random_bytes() -> None:
    first, second = signing.generate_secret(), signing.generate_secret()

    assert first.startswith("whsec_")
    assert len(signing.parse_secret(first)) == 32
    assert first != second


@pytest.mark.parametrize(
    ("secret", "code"),
    [
        ("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "secret_prefix"),
        ("whsec_not base64!", "secret_encoding"),
        ("whsec_" + base64.b64encode(b"s" * 16).decode(), "secret_length"),
    ],
)
def test_unusable_secrets_are_refused_without_being_echoed(secret: str, code: str) -> None:
    with pytest.raises(signing.SecretError) as caught:
        signing.Signer(secrets=[secret])

    assert caught.value.code == code
    assert secret.removeprefix("whsec_") not in str(caught.value)


def test_the_signature_header_has_a_v1_per_secret_and_a_v1a_per_server_key() -> None:
    secrets = [signing.generate_secret(), signing.generate_secret()]
    server_keys = [Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()]
    headers = _sign(signing.Signer(secrets=secrets, signing_keys=server_keys), timestamp=1674087231)

    assert headers["webhook-id"] == MSG_ID
    assert headers["webhook-timestamp"] == "1674087231"
    entries = [entry.split(",", 1) for entry in headers["webhook-signature"].split(" ")]
    assert [version for version, _ in entries] == ["v1", "v1", "v1a", "v1a"]
    content = f"{MSG_ID}.1674087231.".encode() + BODY
    for secret, (_, mac) in zip(secrets, entries[:2]):
        expected = hmac.new(signing.parse_secret(secret), content, hashlib.sha256).digest()
        assert base64.b64decode(mac) == expected
    for key, (_, signature) in zip(server_keys, entries[2:]):
        key.public_key().verify(base64.b64decode(signature), content)


def test_a_signed_delivery_verifies_with_standardwebhooks_and_with_the_member_verifier() -> None:
    secret, server_key = signing.generate_secret(), Ed25519PrivateKey.generate()
    headers = _sign(signing.Signer(secrets=[secret], signing_keys=[server_key]))
    jwks = webhooks.load_jwks({"keys": [public_jwk(server_key)]})

    assert _standard_ok(secret, headers)
    assert _ours(headers, secrets=[secret]) == MSG_ID
    assert _ours(headers, public_keys=jwks, require_v1a=True) == MSG_ID
    assert _ours(headers, public_keys=[public_jwk(server_key)], require_v1a=True) == MSG_ID


def test_one_signer_signs_any_number_of_deliveries() -> None:
    """A signer is built once per subscription and reused: each signature covers only its own content."""
    secret = signing.generate_secret()
    signer = signing.Signer(secrets=[secret])

    for n in range(3):
        body = BODY.replace(b'"first_seq":1', b'"first_seq":%d' % n)
        assert _standard_ok(secret, _sign(signer, body=body), body)

@pytest.mark.parametrize("part", ["body", "id", "timestamp"])
def test_tampering_with_body_id_or_timestamp_fails_both_verifiers(part: str) -> None:
    secret, server_key = signing.generate_secret(), Ed25519PrivateKey.generate()
    headers, body = _sign(signing.Signer(secrets=[secret], signing_keys=[server_key])), BODY
    if part == "body":
        body = BODY.replace(b'"last_seq":2', b'"last_seq":3')
    elif part == "id":
        headers["webhook-id"] = "msg_other"
    else:
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) + 1)

    assert not _standard_ok(secret, headers, body)
    assert _ours(headers, body, secrets=[secret]) == "no_matching_signature"
    assert _ours(headers, body, public_keys=[server_key.public_key()], require_v1a=True) == "no_matching_signature"


def test_an_old_or_future_timestamp_fails_both_verifiers_even_with_a_valid_signature() -> None:
    secret, server_key = signing.generate_secret(), Ed25519PrivateKey.generate()
    signer = signing.Signer(secrets=[secret], signing_keys=[server_key])
    stale = _sign(signer, timestamp=int(time.time()) - 600)
    early = _sign(signer, timestamp=int(time.time()) + 600)

    assert not _standard_ok(secret, stale)
    assert _ours(stale, secrets=[secret], public_keys=[server_key.public_key()]) == "timestamp_too_old"
    assert not _standard_ok(secret, early)
    assert _ours(early, secrets=[secret], public_keys=[server_key.public_key()]) == "timestamp_too_new"
    assert _ours(stale, secrets=[secret], tolerance=900) == MSG_ID


def test_during_a_secret_rotation_overlap_receivers_with_either_secret_accept_and_afterwards_only_the_new() -> None:
    old, new = signing.generate_secret(), signing.generate_secret()
    during = _sign(signing.Signer(secrets=[old, new]))
    after = _sign(signing.Signer(secrets=[new]))

    for secret in (old, new):
        assert _standard_ok(secret, during)
        assert _ours(during, secrets=[secret]) == MSG_ID
    assert not _standard_ok(old, after)
    assert _ours(after, secrets=[old]) == "no_matching_signature"
    assert _ours(after, secrets=[old, new]) == MSG_ID


def test_during_a_server_key_rotation_overlap_receivers_knowing_either_key_accept() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    during = _sign(signing.Signer(signing_keys=[old, new]))
    after = _sign(signing.Signer(signing_keys=[new]))

    assert _ours(during, public_keys=[old.public_key()], require_v1a=True) == MSG_ID
    assert _ours(during, public_keys=[new.public_key()], require_v1a=True) == MSG_ID
    assert _ours(after, public_keys=[old.public_key()], require_v1a=True) == "no_matching_signature"
    jwks = webhooks.load_jwks({"keys": [public_jwk(old), public_jwk(new)]})
    assert _ours(after, public_keys=jwks, require_v1a=True) == MSG_ID


def test_a_signer_never_shows_its_key_material() -> None:
    secret = signing.generate_secret()
    signer = signing.Signer(secrets=[secret], signing_keys=[Ed25519PrivateKey.generate()])

    assert secret.removeprefix("whsec_") not in repr(signer)
    assert repr(signer) == "Signer(secrets=1, signing_keys=1)"


@pytest.mark.parametrize("msg_id", ["msg.1", "", "msg 1", "msg\r\nx-injected: 1"])
def test_ids_that_could_blur_the_signed_content_or_the_headers_are_refused(msg_id: str) -> None:
    signer = signing.Signer(secrets=[signing.generate_secret()])

    with pytest.raises(ValueError):
        signer.headers(msg_id, int(time.time()), BODY)


def test_new_message_ids_are_unique_and_signable() -> None:
    ids = {signing.new_message_id() for _ in range(1000)}
    signer = signing.Signer(secrets=[signing.generate_secret()])

    assert len(ids) == 1000
    for msg_id in list(ids)[:5]:
        assert signer.headers(msg_id, int(time.time()), BODY)["webhook-id"] == msg_id


def test_a_signer_with_nothing_to_sign_with_is_refused() -> None:
    with pytest.raises(ValueError):
        signing.Signer()
