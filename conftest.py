"""Shared fixtures: a fixed cast of members (alice and bob are platforms, homeoffice is the
government member, charlie is outside every sharing group), each with a token and a signing key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pytest
from rest_framework.test import APIClient

from consortium import celery_app
from consortium_client import keys
from consortium_client.statements import StatementSigner, hash_statement, retract_statement
from hashes.services.pipeline import drain
from members.models import Member, SharingGroup, SigningKey
from members.services import key_register, member_create, token_create


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

    def retraction(self, jti: str, reason: str = "false positive", **fields: Any) -> str:
        return self.signer.sign(retract_statement(iss=self.slug, retracts=jti, reason=reason, **fields))

    def submit(self, *statements: str) -> dict[str, Any]:
        response = self.api.post("/api/v1/statements/", {"statements": list(statements)}, format="json")
        assert response.status_code == 202, response.content
        return response.json()

    def feed(self, after: int = 0, limit: int = 1000) -> dict[str, Any]:
        response = self.api.get(f"/api/v1/feed/?after={after}&limit={limit}")
        assert response.status_code == 200, response.content
        return response.json()


def md5(n: int) -> dict[str, str]:
    return {"type": "md5", "value": f"{n:032x}"}


def pdq(n: int, quality: int = 90) -> dict[str, Any]:
    return {"type": "pdq", "value": f"{n:064x}", "quality": quality}


@pytest.fixture(autouse=True)
def celery_eager():
    """Unit tests drive the pipeline in-process (see `pipeline`); end-to-end tests run real workers."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def make_actor(slug: str, kind: str = "platform", scopes: tuple[str, ...] = ("submit", "read", "match")) -> Actor:
    member = member_create(slug=slug, name=slug.title(), kind=kind)
    token = token_create(member=member, scopes=scopes).plaintext
    private = keys.generate_private_key()
    key = key_register(member=member, jwk=keys.public_jwk(private), approve=True)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return Actor(member=member, token=token, signer=StatementSigner(private, key.kid), key=key, api=api)


@pytest.fixture
def actor_factory(db) -> Callable[..., Actor]:
    return make_actor


@pytest.fixture
def alice(db) -> Actor:
    return make_actor("alice")


@pytest.fixture
def bob(db) -> Actor:
    return make_actor("bob")


@pytest.fixture
def charlie(db) -> Actor:
    return make_actor("charlie")


@pytest.fixture
def homeoffice(db) -> Actor:
    return make_actor("homeoffice", kind="government")


@pytest.fixture
def trusted_group(alice: Actor, bob: Actor) -> SharingGroup:
    """alice and bob share some statements only with each other."""
    group = SharingGroup.objects.create(slug="trusted", name="Trusted")
    group.members.set([alice.member, bob.member])
    return group


@pytest.fixture
def pipeline() -> Callable[[], None]:
    """Run verification and publishing in this process until nothing is left."""
    return drain


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()
