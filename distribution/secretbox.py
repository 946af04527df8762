"""Subscription secrets at rest.

A `whsec_` secret is symmetric: the server needs the plaintext to compute each HMAC, so it cannot be
stored as a digest the way API tokens are. It is encrypted with Fernet (AES-128-CBC + HMAC-SHA256)
under WEBHOOK_SECRET_KEYS, newest key first; older keys still decrypt, which is how that key is
rotated. Without the setting, one key is derived from SECRET_KEY, so a database dump alone never
reveals a secret."""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@lru_cache(maxsize=4)
def _box(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    if not keys:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"consortium webhook secrets v1").derive(
            secret_key.encode("utf-8"))
        keys = (base64.urlsafe_b64encode(derived).decode("ascii"),)
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError:
        raise ImproperlyConfigured("WEBHOOK_SECRET_KEYS holds a value that is not a Fernet key.") from None


def box() -> MultiFernet:
    return _box(tuple(settings.WEBHOOK_SECRET_KEYS), settings.SECRET_KEY)


def seal(secret: str) -> str:
    return box().encrypt(secret.encode("ascii")).decode("ascii")


def unseal(sealed: str) -> str:
    try:
        return box().decrypt(sealed.encode("ascii")).decode("ascii")
    except InvalidToken:
        # Never the sealed value or a key in the message: it would end up in logs.
        raise ImproperlyConfigured("A webhook secret cannot be decrypted with WEBHOOK_SECRET_KEYS.") from None
