"""Standard Webhooks signatures (standardwebhooks.com) for outbound deliveries.

Every delivery carries `webhook-id`, `webhook-timestamp` and `webhook-signature`; the signature
header lists one `v1,<HMAC-SHA256>` per active subscription secret and one `v1a,<Ed25519>` per
active server key over `{id}.{timestamp}.{body}`. Listing several is how rotation works without
downtime: during an overlap the old and new secret (or key) both sign, and a receiver accepts the
delivery if any one of them verifies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable
from secrets import token_bytes, token_urlsafe

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SECRET_PREFIX = "whsec_"
# The spec allows 24 to 64 random bytes; 32 already matches the strength of HMAC-SHA256.
SECRET_BYTES = 32
SECRET_MIN_BYTES = 24
SECRET_MAX_BYTES = 64

# The id is part of the signed content and delimited by dots, so it must not contain one; keeping
# it to a header-safe alphabet also rules out header injection.
_MESSAGE_ID = re.compile(r"[A-Za-z0-9_:-]{1,255}")


class SecretError(ValueError):
    """A `whsec_` secret that cannot be used. The message never repeats the secret."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def generate_secret(num_bytes: int = SECRET_BYTES) -> str:
    if not SECRET_MIN_BYTES <= num_bytes <= SECRET_MAX_BYTES:
        raise ValueError(f"a secret has {SECRET_MIN_BYTES} to {SECRET_MAX_BYTES} bytes")
    return SECRET_PREFIX + base64.b64encode(token_bytes(num_bytes)).decode("ascii")


def parse_secret(secret: str) -> bytes:
    """The raw HMAC key of a `whsec_` secret."""
    if not secret.startswith(SECRET_PREFIX):
        raise SecretError("secret_prefix", "A webhook secret starts with whsec_.")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise SecretError("secret_encoding", "A webhook secret is whsec_ followed by base64.") from None
    if not SECRET_MIN_BYTES <= len(key) <= SECRET_MAX_BYTES:
        raise SecretError(
            "secret_length", f"A webhook secret holds {SECRET_MIN_BYTES} to {SECRET_MAX_BYTES} bytes."
        )
    return key


def new_message_id() -> str:
    return "msg_" + token_urlsafe(18)


def signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    if not _MESSAGE_ID.fullmatch(msg_id):
        raise ValueError("a webhook id is 1 to 255 characters of A-Z a-z 0-9 _ : -")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError("a webhook timestamp is a non-negative integer of Unix seconds")
    return b"%s.%d.%s" % (msg_id.encode("ascii"), timestamp, body)


class Signer:
    """Signs deliveries with a fixed set of secrets and server keys.

    Build one per subscription (or per batch of sends) and reuse it: secrets are decoded and the
    HMAC key schedule computed once here, so each signature only hashes the content.
    """

    __slots__ = ("_hmacs", "_keys")

    def __init__(
        self, *, secrets: Iterable[str] = (), signing_keys: Iterable[Ed25519PrivateKey] = ()
    ) -> None:
        self._hmacs = tuple(hmac.new(parse_secret(s), digestmod=hashlib.sha256) for s in secrets)
        self._keys = tuple(signing_keys)
        if not self._hmacs and not self._keys:
            raise ValueError("a signer needs at least one secret or signing key")
        if not all(isinstance(key, Ed25519PrivateKey) for key in self._keys):
            raise TypeError("signing keys are Ed25519PrivateKey objects")

    def __repr__(self) -> str:
        # Never the key material: a signer may end up in a traceback or a log line.
        return f"Signer(secrets={len(self._hmacs)}, signing_keys={len(self._keys)})"

    def signature(self, msg_id: str, timestamp: int, body: bytes) -> str:
        """The `webhook-signature` header value."""
        content = signed_content(msg_id, timestamp, body)
        parts: list[str] = []
        for prepared in self._hmacs:
            mac = prepared.copy()
            mac.update(content)
            parts.append("v1," + base64.b64encode(mac.digest()).decode("ascii"))
        for key in self._keys:
            parts.append("v1a," + base64.b64encode(key.sign(content)).decode("ascii"))
        return " ".join(parts)

    def headers(self, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        """The three Standard Webhooks headers. Stamp each attempt anew: receivers reject old timestamps."""
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": self.signature(msg_id, timestamp, body),
        }
