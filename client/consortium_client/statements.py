"""Build and sign the statements a member submits (payload format: DESIGN.md, "Signed statements")."""

from __future__ import annotations

import hashlib
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


def vpdq_digest(frame_hashes: Iterable[str]) -> str:
    """A vPDQ hash's `value`: the SHA-256 of its frames' PDQ hashes (lower-case hex, in frame index
    order) joined by newlines. Feedback targets a video by it, and every hash view shows it."""
    return hashlib.sha256("\n".join(frame_hashes).encode("ascii")).hexdigest()


def target_of(signal: dict[str, Any]) -> dict[str, str]:
    """The feedback `target` naming the hash a signal describes (`{"type", "value"}`)."""
    if signal["type"] == "vpdq":
        frames = sorted(signal["frames"], key=lambda frame: frame["i"])
        return {"type": "vpdq", "value": vpdq_digest(frame["pdq"].lower() for frame in frames)}
    return {"type": signal["type"], "value": signal["value"].lower()}


class StatementSigner:
    """Holds a member's signing key and key id; `sign(payload)` returns the compact JWS."""

    def __init__(self, private_key: Ed25519PrivateKey, kid: str) -> None:
        self.private_key = private_key
        self.kid = kid

    def sign(self, payload: dict[str, Any]) -> str:
        return jws.sign(self.private_key, self.kid, payload)
