"""Build and sign the statements a member submits (payload format: DESIGN.md, "Signed statements")."""

from __future__ import annotations

import time
import uuid
from typing import Any, Iterable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from . import jws


def hash_statement(
    *,
    iss: str,
    signals: Iterable[dict[str, Any]],
    content_type: str,
    labels: Iterable[str] = (),
    incident: str | None = None,
    share: str = "consortium",
    note: str | None = None,
    jti: str | None = None,
    iat: int | None = None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "iss": iss,
        "iat": int(time.time()) if iat is None else iat,
        "jti": jti or str(uuid.uuid4()),
        "kind": "hash",
        "signals": list(signals),
        "content_type": content_type,
        "labels": list(labels),
        "share": share,
    }
    if incident is not None:
        payload["incident"] = incident
    if note is not None:
        payload["note"] = note
    return payload


def retract_statement(
    *, iss: str, retracts: str, reason: str, jti: str | None = None, iat: int | None = None
) -> dict[str, Any]:
    return {
        "iss": iss,
        "iat": int(time.time()) if iat is None else iat,
        "jti": jti or str(uuid.uuid4()),
        "kind": "retract",
        "retracts": retracts,
        "reason": reason,
    }


def feedback_statement(
    *,
    iss: str,
    target: dict[str, str],
    verdict: str,
    reasons: Iterable[str] = (),
    labels: Iterable[str] = (),
    note: str | None = None,
    share: str = "consortium",
    jti: str | None = None,
    iat: int | None = None,
) -> dict[str, Any]:
    """A verdict on a hash: `target` is {"type", "value"} (a vPDQ by its value digest), `verdict`
    agree, disagree (with `reasons`) or seen."""
    payload: dict[str, Any] = {
        "iss": iss,
        "iat": int(time.time()) if iat is None else iat,
        "jti": jti or str(uuid.uuid4()),
        "kind": "feedback",
        "target": dict(target),
        "verdict": verdict,
        "share": share,
    }
    if reasons:
        payload["reasons"] = list(reasons)
    if labels:
        payload["labels"] = list(labels)
    if note is not None:
        payload["note"] = note
    return payload


class StatementSigner:
    """Holds a member's signing key and key id; `sign(payload)` returns the compact JWS."""

    def __init__(self, private_key: Ed25519PrivateKey, kid: str) -> None:
        self.private_key = private_key
        self.kid = kid

    def sign(self, payload: dict[str, Any]) -> str:
        return jws.sign(self.private_key, self.kid, payload)
