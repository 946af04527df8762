"""The member-side verifier's own rules: what it requires, what it skips, how it loads server keys."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import pytest
from consortium_client import webhooks
from consortium_client.keys import JWKError, public_jwk
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from distribution.delivery import signing

BODY = b'{"type":"ping","timestamp":"2026-01-01T00:00:00Z","data":{}}'


@pytest.fixture
def secret() -> str:
    return signing.generate_secret()


@pytest.fixture
def server_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _headers(*, secrets: Sequence[str] = (), keys: Sequence[Ed25519PrivateKey] = ()) -> dict[str, str]:
    return signing.Signer(secrets=secrets, signing_keys=keys).headers("msg_1", int(time.time()), BODY)


def _code(headers: dict[str, str], **options: Any) -> str:
    with pytest.raises(webhooks.WebhookVerificationError) as caught:
        webhooks.verify(headers, BODY, **options)
    return caught.value.code


def test_require_v1a_refuses_a_delivery_whose_only_valid_signature_is_v1(
    secret: str, server_key: Ed25519PrivateKey
) -> None:
    v1_only = _headers(secrets=[secret])

    assert webhooks.verify(v1_only, BODY, secrets=[secret]) == "msg_1"
    assert _code(v1_only, secrets=[secret], public_keys=[server_key.public_key()], require_v1a=True) == (
        "no_matching_signature"
    )


def test_a_wrong_secret_or_a_wrong_key_is_no_match(secret: str, server_key: Ed25519PrivateKey) -> None:
    headers = _headers(secrets=[secret], keys=[server_key])

    assert _code(headers, secrets=[signing.generate_secret()]) == "no_matching_signature"
    assert _code(headers, public_keys=[Ed25519PrivateKey.generate().public_key()]) == "no_matching_signature"


def test_unknown_versions_and_undecodable_entries_are_skipped_not_fatal(server_key: Ed25519PrivateKey) -> None:
    headers = _headers(keys=[server_key])
    headers["webhook-signature"] = "v2,whatever v1a,!!!notbase64 v1a,c2hvcnQ= nocomma " + headers["webhook-signature"]

    assert webhooks.verify(headers, BODY, public_keys=[server_key.public_key()]) == "msg_1"


def test_header_names_are_matched_whatever_their_case(secret: str) -> None:
    headers = {name.title(): value for name, value in _headers(secrets=[secret]).items()}

    assert webhooks.verify(headers, BODY.decode(), secrets=[secret]) == "msg_1"


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_refused(secret: str, missing: str) -> None:
    headers = _headers(secrets=[secret])
    del headers[missing]

    assert _code(headers, secrets=[secret]) == "missing_header"


@pytest.mark.parametrize("timestamp", ["1e9", "-5", "12.5", " 1700000000", "soon"])
def test_a_timestamp_that_is_not_integer_seconds_is_refused(secret: str, timestamp: str) -> None:
    headers = {**_headers(secrets=[secret]), "webhook-timestamp": timestamp}

    assert _code(headers, secrets=[secret]) == "invalid_timestamp"


def test_verifying_with_no_secret_and_no_key_is_a_caller_error(secret: str) -> None:
    with pytest.raises(ValueError):
        webhooks.verify(_headers(secrets=[secret]), BODY)
    with pytest.raises(ValueError):
        webhooks.verify(_headers(secrets=[secret]), BODY, secrets=[secret], require_v1a=True)


def test_the_servers_jwk_set_loads_from_text_and_skips_keys_it_does_not_understand(
    server_key: Ed25519PrivateKey,
) -> None:
    document = json.dumps(
        {
            "keys": [
                {"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x"},
                {**public_jwk(Ed25519PrivateKey.generate()), "use": "enc"},
                public_jwk(server_key),
            ]
        }
    )
    headers = _headers(keys=[server_key])

    for form in (document, document.encode()):
        keys = webhooks.load_jwks(form)
        assert len(keys) == 1
        assert webhooks.verify(headers, BODY, public_keys=keys, require_v1a=True) == "msg_1"


@pytest.mark.parametrize(
    ("document", "code"),
    [
        ("not json", "jwks_invalid"),
        ({"keys": "nope"}, "jwks_invalid"),
        ({"keys": []}, "jwks_empty"),
        ({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}]}, "jwk_invalid"),
    ],
)
def test_an_unusable_jwk_set_is_refused_with_a_code(document: Any, code: str) -> None:
    with pytest.raises(JWKError) as caught:
        webhooks.load_jwks(document)

    assert caught.value.code == code


def test_a_jwk_set_leaking_a_private_key_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    leaked = {**public_jwk(key), "d": "c2VjcmV0"}

    with pytest.raises(JWKError) as caught:
        webhooks.load_jwks({"keys": [leaked]})

    assert caught.value.code == "jwk_private_key"
