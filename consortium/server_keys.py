"""The server's own Ed25519 identity: the key that signs webhook deliveries (`v1a`) and the
statements the server issues itself (a dispute's removal), published at /.well-known/jwks.json
(consortium/apis.py).

During a rotation the previous key signs deliveries beside the current one until
CONSORTIUM_SIGNING_KEY_PREVIOUS_UNTIL, so receivers that still hold only the old public key keep
accepting deliveries while they fetch the new JWK Set."""

from __future__ import annotations

import os
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from consortium_client.keys import generate_private_key, private_key_from_pem, private_key_to_pem, public_jwk


def ensure_key_file() -> None:
    path = settings.CONSORTIUM_SIGNING_KEY_FILE
    if path.exists():
        return
    if not settings.CONSORTIUM_SIGNING_KEY_CREATE:
        raise ImproperlyConfigured(f"CONSORTIUM_SIGNING_KEY_FILE {path} does not exist.")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process created it first
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_key_to_pem(generate_private_key()))


@lru_cache(maxsize=1)
def server_signing_key() -> Ed25519PrivateKey:
    ensure_key_file()
    return private_key_from_pem(settings.CONSORTIUM_SIGNING_KEY_FILE.read_bytes())


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
    """Every key that signs deliveries at `now`: during a rotation, the previous one too."""
    keys = [server_signing_key()]
    path = settings.CONSORTIUM_SIGNING_KEY_PREVIOUS_FILE
    if path:
        until = previous_key_until()
        if until is None:
            raise ImproperlyConfigured("Set CONSORTIUM_SIGNING_KEY_PREVIOUS_UNTIL with the previous key's file.")
        if now < until:
            keys.append(_previous_key(path))
    return keys


def server_jwks() -> dict[str, list[dict[str, str]]]:
    return {"keys": [{**public_jwk(key), "alg": "Ed25519", "use": "sig"}
                     for key in delivery_signing_keys(timezone.now())]}
