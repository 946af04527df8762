"""Check signed statements, and the feed events that carry them, against published keys.

Any member can check who said what without trusting the server: a member's statement must verify
with one of that member's keys in `GET keys/` (active or retired; pending and revoked keys never
verify), and a statement the server signs itself (`iss` is the server's issuer, as when a dispute
removes a hash) with a key of `/.well-known/jwks.json`. Pure code: the keys are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from . import jws
from .errors import CodedError
from .keys import JWKError, load_public_jwk

DEFAULT_SERVER_ISSUER = "consortium-server"


class StatementVerificationError(CodedError, ValueError):
    """A statement (or an event's use of one) that must not be trusted; `code` is stable."""


@dataclass(frozen=True)
class PublishedKey:
    kid: str
    member: str | None  # None for the server's own keys
    state: str
    key: Ed25519PublicKey


@dataclass(frozen=True)
class VerifiedStatement:
    jws: str
    header: dict[str, Any]
    payload: dict[str, Any]
    key: PublishedKey

    def summary(self) -> dict[str, Any]:
        return {
            "valid": True, "iss": self.payload.get("iss"), "jti": self.payload.get("jti"),
            "kind": self.payload.get("kind"), "kid": self.key.kid,
            "signer": "server" if self.key.member is None else "member", "key_state": self.key.state,
            "payload": self.payload,
        }


class KeyRing:
    """Members' keys (a JWK Set as `GET keys/` answers, each key with `member` and `state`) and the
    server's (`/.well-known/jwks.json`), looked up by kid."""

    def __init__(
        self,
        member_keys: Mapping[str, Any] | None = None,
        server_keys: Mapping[str, Any] | None = None,
        *,
        server_issuer: str = DEFAULT_SERVER_ISSUER,
    ) -> None:
        self.server_issuer = server_issuer
        self.members: dict[str, PublishedKey] = {}
        self.server: dict[str, PublishedKey] = {}
        if member_keys is not None:
            self.add_member_keys(member_keys)
        if server_keys is not None:
            self.add_server_keys(server_keys)

    def add_member_keys(self, jwks: Mapping[str, Any]) -> None:
        for jwk in _entries(jwks):
            member, state = jwk.get("member"), jwk.get("state", "active")
            if not isinstance(member, str) or state not in ("active", "retired"):
                continue  # a key not tied to a member, or one that no longer verifies anything
            self.members[jwk["kid"]] = PublishedKey(jwk["kid"], member, state, _public_key(jwk))

    def add_server_keys(self, jwks: Mapping[str, Any]) -> None:
        for jwk in _entries(jwks):
            if jwk.get("use", "sig") == "sig":
                self.server[jwk["kid"]] = PublishedKey(jwk["kid"], None, "active", _public_key(jwk))

    def knows(self, kid: str) -> bool:
        return kid in self.members or kid in self.server

    def verify(self, token: str) -> VerifiedStatement:
        """Parse `token`, find its key and check the signature, or raise StatementVerificationError."""
        try:
            parsed = jws.parse(token)
        except jws.JWSError as exc:
            raise StatementVerificationError(exc.code, exc.message) from None
        iss = parsed.payload.get("iss")
        if not isinstance(iss, str):
            raise StatementVerificationError("iss_missing", "The payload names no issuer (iss).")
        if iss == self.server_issuer:
            key = self.server.get(parsed.kid)
            if key is None:
                raise StatementVerificationError(
                    "key_unknown", f"No key of the server's JWK Set has kid {parsed.kid!r}.")
        else:
            key = self.members.get(parsed.kid)
            if key is None:
                raise StatementVerificationError(
                    "key_unknown", f"No active or retired member key has kid {parsed.kid!r}.")
            if key.member != iss:
                raise StatementVerificationError(
                    "key_wrong_member", f"Key {parsed.kid!r} belongs to {key.member!r}, not to the issuer {iss!r}.")
        if not jws.verify_signature(parsed, key.key):
            raise StatementVerificationError("signature_invalid", f"The signature does not verify with key {key.kid!r}.")
        return VerifiedStatement(token, parsed.header, parsed.payload, key)


def verify_event(event: Mapping[str, Any], keys: KeyRing) -> list[VerifiedStatement]:
    """Check every signed statement a feed event (or a webhook's event) carries, and that they are
    the statements the event says they are: each of `hash.statements` is a `hash` statement of one
    of the hash's submitters, and the event's `cause` is the statement it names.

    Returns the verified statements; raises StatementVerificationError naming the first problem.
    """
    hash_ = event.get("hash")
    if not isinstance(hash_, Mapping):
        raise StatementVerificationError("event_malformed", "The event carries no hash.")
    statements = hash_.get("statements") or []
    submitters = {s.get("member") for s in hash_.get("submitters") or [] if isinstance(s, Mapping)}
    verified = []
    for position, token in enumerate(statements):
        statement = _verify_at(keys, token, f"hash.statements[{position}]")
        if statement.payload.get("kind") != "hash" or statement.payload.get("iss") not in submitters:
            raise StatementVerificationError(
                "statement_mismatch",
                f"hash.statements[{position}] is not a hash statement of one of the hash's submitters.")
        verified.append(statement)
    cause = event.get("cause")
    if isinstance(cause, Mapping):
        if "statement" in cause:
            statement = _verify_at(keys, cause["statement"], "cause.statement")
        else:
            found = [s for s in verified if s.payload.get("iss") == cause.get("member")
                     and s.payload.get("jti") == cause.get("jti")]
            if not found:
                raise StatementVerificationError(
                    "cause_missing", "The cause is neither attached nor among hash.statements.")
            statement = found[0]
        payload = statement.payload
        if (payload.get("iss"), payload.get("jti"), payload.get("kind")) != (
            cause.get("member"), cause.get("jti"), cause.get("kind")
        ):
            raise StatementVerificationError(
                "cause_mismatch", "The cause's signed statement is not the one the event names.")
        if "statement" in cause:
            verified.append(statement)
    return verified


def _verify_at(keys: KeyRing, token: Any, where: str) -> VerifiedStatement:
    try:
        return keys.verify(token)
    except StatementVerificationError as exc:
        raise StatementVerificationError(exc.code, f"{where}: {exc.message}") from None


def _entries(jwks: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    entries = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(entries, list):
        raise JWKError("jwks_invalid", 'A JWK Set is a JSON object with a "keys" array.')
    for jwk in entries:
        # RFC 7517 section 5: keys of a type this reader does not use are skipped, not fatal.
        if isinstance(jwk, dict) and jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519" and jwk.get("kid"):
            yield jwk


def _public_key(jwk: dict[str, Any]) -> Ed25519PublicKey:
    return load_public_jwk({k: v for k, v in jwk.items() if k in ("kty", "crv", "x", "kid")})
