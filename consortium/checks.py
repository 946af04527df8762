"""System checks: a server that cannot work refuses to start, naming the setting to fix, instead of
answering 500 to the first request that needs it."""

from __future__ import annotations

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured


@checks.register(checks.Tags.security)
def server_signing_key(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """The server's Ed25519 key signs webhook deliveries and is published at /.well-known/jwks.json."""
    from consortium_client.keys import private_key_from_pem

    path = settings.CONSORTIUM_SIGNING_KEY_FILE
    hint = ("Set CONSORTIUM_SIGNING_KEY_FILE to the server's Ed25519 private key (PEM, PKCS#8), e.g. made "
            "with `openssl genpkey -algorithm ed25519`; or set CONSORTIUM_SIGNING_KEY_CREATE=true to "
            "create one at that path on first start.")
    if not path.exists():
        if settings.CONSORTIUM_SIGNING_KEY_CREATE:
            return []
        return [checks.Error(f"CONSORTIUM_SIGNING_KEY_FILE {path} does not exist.", hint=hint,
                             id="consortium.E001")]
    try:
        private_key_from_pem(path.read_bytes())
    except (OSError, ValueError, TypeError) as exc:  # JWKError is a ValueError
        return [checks.Error(f"CONSORTIUM_SIGNING_KEY_FILE {path} is not a readable Ed25519 private key "
                             f"({type(exc).__name__}).", hint=hint, id="consortium.E002")]
    return []


def refuse_to_start_if_misconfigured() -> None:
    """For processes that Django's management commands do not start (gunicorn, Celery)."""
    errors = [message for message in server_signing_key() if message.is_serious()]
    if errors:
        raise ImproperlyConfigured("\n".join(f"{error.msg} {error.hint}" for error in errors))
