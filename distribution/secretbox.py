"""Subscription secrets at rest.

A `whsec_` secret is symmetric: the server needs the plaintext to compute each HMAC, so it cannot be
stored as a digest the way API tokens are. It is encrypted with Fernet (AES-128-CBC + HMAC-SHA256)
under WEBHOOK_SECRET_KEYS, newest key first; older keys still decrypt, which is how that key is
rotated (`manage.py webhook_secrets reseal` moves every secret to the newest key, after which an
older key can go). Without the setting, one key is derived from SECRET_KEY, so a database dump alone
never reveals a secret. With it, that derived key still decrypts, last, and never encrypts: moving
from the default to explicit keys leaves every existing secret readable until it is resealed."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# Never the sealed value or a key in a message: it would end up in logs.
UNREADABLE = "A webhook secret cannot be decrypted with WEBHOOK_SECRET_KEYS."


@dataclass(frozen=True)
class _Keys:
    all: MultiFernet  # encrypts with the first, decrypts with any
    newest: Fernet


def _derived_key(secret_key: str) -> str:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"consortium webhook secrets v1").derive(
        secret_key.encode("utf-8"))
    return base64.urlsafe_b64encode(derived).decode("ascii")


@lru_cache(maxsize=4)
def _keys(configured: tuple[str, ...], secret_key: str) -> _Keys:
    derived = _derived_key(secret_key)
    keys = [*configured, derived] if derived not in configured else list(configured)
    try:
        fernets = [Fernet(key) for key in keys]
    except ValueError:
        raise ImproperlyConfigured("WEBHOOK_SECRET_KEYS holds a value that is not a Fernet key.") from None
    return _Keys(MultiFernet(fernets), fernets[0])


def _current() -> _Keys:
    return _keys(tuple(settings.WEBHOOK_SECRET_KEYS), settings.SECRET_KEY)


def box() -> MultiFernet:
    return _current().all


def seal(secret: str) -> str:
    return box().encrypt(secret.encode("ascii")).decode("ascii")


def unseal(sealed: str) -> str:
    try:
        return box().decrypt(sealed.encode("ascii")).decode("ascii")
    except (InvalidToken, ValueError):  # ValueError: not even ASCII
        raise ImproperlyConfigured(UNREADABLE) from None


def is_newest(sealed: str) -> bool:
    """Whether the newest key alone decrypts it: once every secret is, the older keys can go."""
    try:
        _current().newest.decrypt(sealed.encode("ascii"))
    except (InvalidToken, ValueError):
        return False
    return True


def reseal(sealed: str) -> str:
    """The same secret encrypted under the newest key."""
    try:
        return box().rotate(sealed.encode("ascii")).decode("ascii")
    except (InvalidToken, ValueError):
        raise ImproperlyConfigured(UNREADABLE) from None
