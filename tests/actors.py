"""Members as tests (and benchmarks) use them: a member with a token, a signing key and a client."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rest_framework.test import APIClient

from consortium_client import keys
from consortium_client.statements import StatementSigner, feedback_statement, hash_statement, retract_statement
from members.models import Member, SigningKey
from members.services import key_register, member_create, token_create
from tests.factories import md5

# An API token as the server issues it: cst_<prefix: 12 hex>_<secret: 43 characters of base64url>.
# The secret's alphabet has `_` in it, so it is found by position: the text after the last `_` may
# be a few characters (or none), which any text can hold by chance.
TOKEN = re.compile(r"cst_([0-9a-f]{12})_([A-Za-z0-9_-]{43})(?![A-Za-z0-9_-])")


def token_secret(plaintext: str) -> str:
    """The secret part of an API token, whole."""
    match = TOKEN.fullmatch(plaintext)
    assert match, f"not an API token: {plaintext!r}"
    return match[2]


@dataclass
class Actor:
    member: Member
    token: str
    signer: StatementSigner
    key: SigningKey
    api: APIClient

    @property
    def slug(self) -> str:
        return self.member.slug

    def statement(self, signals: list[dict[str, Any]] | None = None, **fields: Any) -> str:
        fields.setdefault("content_type", "photo")
        payload = hash_statement(iss=self.slug, signals=signals or [md5(1)], **fields)
        return self.signer.sign(payload)

    def retraction(self, target_jti: str, reason: str = "false positive", **fields: Any) -> str:
        return self.signer.sign(retract_statement(iss=self.slug, retracts=target_jti, reason=reason, **fields))

    def feedback(self, target: dict[str, Any], verdict: str, **fields: Any) -> str:
        """A signed verdict on the hash of `target` (a signal as the factories make them)."""
        return self.signer.sign(feedback_statement(
            iss=self.slug, target={"type": target["type"], "value": target["value"]}, verdict=verdict, **fields))

    def submit(self, *statements: str) -> dict[str, Any]:
        response = self.api.post("/api/v1/statements/", {"statements": list(statements)}, format="json")
        assert response.status_code == 202, response.content
        return response.json()

    def feed(self, after: int = 0, limit: int = 1000) -> dict[str, Any]:
        response = self.api.get(f"/api/v1/feed/?after={after}&limit={limit}")
        assert response.status_code == 200, response.content
        return response.json()


def make_actor(
    slug: str, kind: str = "platform", scopes: tuple[str, ...] = ("submit", "read", "match", "subscribe")
) -> Actor:
    member = member_create(slug=slug, name=slug.title(), kind=kind)
    token = token_create(member=member, scopes=scopes).plaintext
    private = keys.generate_private_key()
    key = key_register(member=member, jwk=keys.public_jwk(private), approve=True)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return Actor(member=member, token=token, signer=StatementSigner(private, key.kid), key=key, api=api)
