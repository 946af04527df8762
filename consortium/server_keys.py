"""The server's own Ed25519 identity, used to sign webhook deliveries (`v1a`) and published at
/.well-known/jwks.json."""

from __future__ import annotations

import os
from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

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


def server_jwks() -> dict[str, list[dict[str, str]]]:
    """Every key that signs deliveries now: during a rotation, the previous one too."""
    from django.utils import timezone

    from distribution.keys import delivery_signing_keys

    return {"keys": [{**public_jwk(key), "alg": "Ed25519", "use": "sig"}
                     for key in delivery_signing_keys(timezone.now())]}
