"""Ed25519 keys as JWKs (RFC 8037) and their RFC 7638 thumbprints."""

from __future__ import annotations

import binascii
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import CodedError
from .jws import b64url_decode, b64url_encode


class JWKError(CodedError, ValueError):
    """A key (JWK, JWK Set or PEM) that is not a usable Ed25519 key; `code` is stable."""


# Encodings (sign bit cleared) of the points of small order, as in libsodium's blocklist. A public
# key among them lets anyone forge signatures that verify (e.g. R = identity, S = 0), so the member
# could deny what "it" signed.
SMALL_ORDER_POINTS = frozenset(bytes.fromhex(h) for h in (
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
))
FIELD_PRIME = 2**255 - 19


def is_weak_public_key(raw: bytes) -> bool:
    """Small-order points, and non-canonical encodings (y not reduced modulo p)."""
    y = bytearray(raw)
    y[31] &= 0x7F
    return bytes(y) in SMALL_ORDER_POINTS or int.from_bytes(y, "little") >= FIELD_PRIME


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_jwk(key: Ed25519PrivateKey | Ed25519PublicKey, kid: str | None = None) -> dict[str, str]:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}
    jwk["kid"] = kid or thumbprint(jwk)
    return jwk


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace."""
    canonical = json.dumps({"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]}, separators=(",", ":"))
    return b64url_encode(hashlib.sha256(canonical.encode("ascii")).digest())


def load_public_jwk(jwk: Any) -> Ed25519PublicKey:
    """Validate a public Ed25519 JWK and return its key. Private keys are refused outright."""
    if not isinstance(jwk, dict):
        raise JWKError("jwk_invalid", "A JWK is a JSON object.")
    if "d" in jwk:
        raise JWKError("jwk_private_key", "This JWK contains a private key (d); send only the public part.")
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise JWKError("jwk_unsupported", "Only Ed25519 keys (kty OKP, crv Ed25519) are accepted.")
    x = jwk.get("x")
    try:
        raw = b64url_decode(x) if isinstance(x, str) else b""
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise JWKError("jwk_invalid", "x must be the 32-byte public key in base64url.")
    if is_weak_public_key(raw):
        raise JWKError("jwk_invalid", "x is a small-order or non-canonical point, which cannot be a real key.")
    return Ed25519PublicKey.from_public_bytes(raw)


def private_key_to_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def private_key_from_pem(pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise JWKError("jwk_unsupported", "The PEM does not hold an Ed25519 private key.")
    return key


def private_jwk(key: Ed25519PrivateKey, kid: str | None = None) -> dict[str, str]:
    """The private key as a JWK (with d). Keep it secret: the server never needs it."""
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return {**public_jwk(key, kid), "d": b64url_encode(raw)}


def load_private_jwk(jwk: dict[str, Any]) -> Ed25519PrivateKey:
    load_public_jwk({k: v for k, v in jwk.items() if k != "d"})
    try:
        raw = b64url_decode(jwk.get("d", ""))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise JWKError("jwk_invalid", "d must be the 32-byte private key in base64url.")
    return Ed25519PrivateKey.from_private_bytes(raw)
