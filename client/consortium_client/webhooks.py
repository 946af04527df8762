"""Verify consortium webhook deliveries (Standard Webhooks) where they are received.

Each delivery's `webhook-signature` header carries `v1,<HMAC-SHA256>` made with the subscription's
`whsec_` secret and `v1a,<Ed25519>` made with the server's key, both over `{id}.{timestamp}.{body}`.
The `standardwebhooks` package checks only `v1`; `verify` checks either, and `require_v1a=True`
trusts only the server's public key, which a receiver can fetch instead of keeping a secret:

    import urllib.request
    with urllib.request.urlopen("https://consortium.example/.well-known/jwks.json") as answer:
        server_keys = load_jwks(answer.read())
    msg_id = verify(request.headers, request.body, secrets=[WHSEC], public_keys=server_keys)

Pass the body exactly as received: parsing and re-serialising the JSON changes the signed bytes.
Use the returned `webhook-id` to drop repeated deliveries; it is stable across retries of the same
batch. Each event in a batch also carries its feed `seq` and a stable `id`: incident events are
pushed at once on the priority lane (`data.lane` is "priority") and arrive again in their place on
the main lane, so keep the ids you have processed and drop an event whose `id` you have seen.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import CodedError
from .keys import JWKError, load_public_jwk

DEFAULT_TOLERANCE = 300.0
SECRET_PREFIX = "whsec_"
_TIMESTAMP = re.compile(r"[0-9]{1,15}")
_HMAC_BYTES = 32
_ED25519_SIGNATURE_BYTES = 64


class WebhookVerificationError(CodedError, ValueError):
    """A delivery that must not be trusted. `code` is stable; the message names no secret."""


def load_jwks(document: Mapping[str, Any] | str | bytes) -> list[Ed25519PublicKey]:
    """The Ed25519 signing keys of a JWK Set such as the server's `/.well-known/jwks.json`."""
    if isinstance(document, (str, bytes)):
        try:
            document = json.loads(document)
        except ValueError:
            raise JWKError("jwks_invalid", "The JWK Set is not valid JSON.") from None
    entries = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(entries, list):
        raise JWKError("jwks_invalid", 'A JWK Set is a JSON object with a "keys" array.')
    keys = []
    for jwk in entries:
        # RFC 7517 section 5: skip key types a reader does not understand, so the server can
        # publish other keys later without breaking receivers.
        if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue
        if jwk.get("use", "sig") != "sig":
            continue
        keys.append(load_public_jwk(jwk))
    if not keys:
        raise JWKError("jwks_empty", "The JWK Set holds no Ed25519 signing key.")
    return keys


def verify(
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    secrets: Iterable[str | bytes] = (),
    public_keys: Iterable[Ed25519PublicKey | Mapping[str, Any]] = (),
    tolerance: float = DEFAULT_TOLERANCE,
    require_v1a: bool = False,
) -> str:
    """Check a delivery and return its `webhook-id`, or raise WebhookVerificationError.

    Accepts the delivery when any `v1` signature matches any of `secrets` or any `v1a` signature
    matches any of `public_keys`; several of each are how rotation overlaps work. With
    `require_v1a`, only a `v1a` signature counts and `secrets` are not consulted.
    """
    hmac_keys = [] if require_v1a else [_hmac_key(secret) for secret in secrets]
    verify_keys = [_public_key(key) for key in public_keys]
    if require_v1a and not verify_keys:
        raise ValueError("require_v1a needs at least one public key")
    if not hmac_keys and not verify_keys:
        raise ValueError("pass the subscription secret, the server's public keys, or both")

    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id")
    timestamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (msg_id and timestamp and signatures):
        raise WebhookVerificationError(
            "missing_header", "webhook-id, webhook-timestamp and webhook-signature are all required."
        )
    _check_timestamp(timestamp, tolerance)

    if isinstance(body, str):
        body = body.encode("utf-8")
    content = f"{msg_id}.{timestamp}.".encode("utf-8") + bytes(body)
    expected_macs = [hmac.new(key, content, hashlib.sha256).digest() for key in hmac_keys]

    # Entries we cannot decode are skipped rather than fatal: the header may carry signature
    # versions this verifier does not know, and one match among them is enough.
    for entry in signatures.split():
        version, _, encoded = entry.partition(",")
        if version == "v1" and expected_macs:
            given = _b64decode(encoded, _HMAC_BYTES)
            if given is not None and any(hmac.compare_digest(given, mac) for mac in expected_macs):
                return msg_id
        elif version == "v1a" and verify_keys:
            given = _b64decode(encoded, _ED25519_SIGNATURE_BYTES)
            if given is not None and any(_ed25519_valid(key, given, content) for key in verify_keys):
                return msg_id

    wanted = "v1a signature matches the server's keys" if require_v1a else "signature matches"
    raise WebhookVerificationError("no_matching_signature", f"No {wanted}.")


def _check_timestamp(text: str, tolerance: float) -> None:
    if not _TIMESTAMP.fullmatch(text):
        raise WebhookVerificationError("invalid_timestamp", "webhook-timestamp is not integer Unix seconds.")
    # Rejecting old deliveries is what stops a captured request from being replayed later.
    skew = int(text) - time.time()
    if skew < -tolerance:
        raise WebhookVerificationError("timestamp_too_old", "webhook-timestamp is too far in the past.")
    if skew > tolerance:
        raise WebhookVerificationError("timestamp_too_new", "webhook-timestamp is too far in the future.")


def _hmac_key(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        key = secret
    else:
        encoded = secret.removeprefix(SECRET_PREFIX)
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a webhook secret is whsec_ followed by base64") from None
    if not key:
        raise ValueError("a webhook secret may not be empty")
    return key


def _public_key(key: Ed25519PublicKey | Mapping[str, Any]) -> Ed25519PublicKey:
    if isinstance(key, Ed25519PublicKey):
        return key
    return load_public_jwk(dict(key))


def _b64decode(encoded: str, length: int) -> bytes | None:
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == length else None


def _ed25519_valid(key: Ed25519PublicKey, signature: bytes, content: bytes) -> bool:
    try:
        key.verify(signature, content)
    except InvalidSignature:
        return False
    return True
