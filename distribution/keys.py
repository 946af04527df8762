"""The server keys that sign deliveries (`v1a`). During a rotation the previous key signs beside the
current one until CONSORTIUM_SIGNING_KEY_PREVIOUS_UNTIL, so receivers that still hold only the old
public key keep accepting deliveries while they fetch the new JWK Set."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.dateparse import parse_datetime

from consortium.server_keys import server_signing_key
from consortium_client.keys import private_key_from_pem


@lru_cache(maxsize=2)
def _previous_key(path: str) -> Ed25519PrivateKey:
    return private_key_from_pem(Path(path).read_bytes())


def previous_key_until() -> datetime | None:
    text = settings.CONSORTIUM_SIGNING_KEY_PREVIOUS_UNTIL
    if not text:
        return None
    when = parse_datetime(text)
    if when is None or when.tzinfo is None:
        raise ImproperlyConfigured("CONSORTIUM_SIGNING_KEY_PREVIOUS_UNTIL is an ISO 8601 time with a zone.")
    return when


def delivery_signing_keys(now: datetime) -> list[Ed25519PrivateKey]:
    keys = [server_signing_key()]
    path = settings.CONSORTIUM_SIGNING_KEY_PREVIOUS_FILE
    if path:
        until = previous_key_until()
        if until is None:
            raise ImproperlyConfigured("Set CONSORTIUM_SIGNING_KEY_PREVIOUS_UNTIL with the previous key's file.")
        if now < until:
            keys.append(_previous_key(path))
    return keys
