"""TAXII 2.1 read through the API (Django's test client) and through the real taxii2-client against
pytest-django's live server (plain http, see the root conftest; transactional with serialized
rollback, like tests/pytx and tests/browser)."""

from __future__ import annotations

from typing import Any

import pytest
import stix2

from taxii.stix import TAXII_MEDIA_TYPE
from tests.actors import Actor

DISCOVERY = "/taxii2/"
COLLECTIONS = "/taxii2/api/collections/"


@pytest.fixture
def server(live_server, transactional_db, django_db_serialized_rollback) -> str:
    return live_server.url


def get(actor: Actor, path: str, **params: Any):
    """A TAXII GET as taxii2-client sends it (Accept: TAXII 2.1), answered in TAXII's media type."""
    response = actor.api.get(path, params, HTTP_ACCEPT=TAXII_MEDIA_TYPE)
    assert response["Content-Type"] == TAXII_MEDIA_TYPE, (path, response["Content-Type"])
    return response


def collection_ids(actor: Actor) -> dict[str, str]:
    """alias: id of the collections the member may read."""
    response = get(actor, COLLECTIONS)
    assert response.status_code == 200, response.content
    return {c["alias"]: c["id"] for c in response.json()["collections"]}


def objects_path(collection_id: str) -> str:
    return f"{COLLECTIONS}{collection_id}/objects/"


def all_pages(actor: Actor, path: str, key: str = "objects", **params: Any) -> tuple[list[Any], list[Any]]:
    """Every item of every page, following `next` while `more` (which must come with it), and the raw pages."""
    items, pages, cursor = [], [], None
    for _ in range(1000):
        response = get(actor, path, **params, **({"next": cursor} if cursor else {}))
        assert response.status_code == 200, response.content
        page = response.json()
        pages.append(response)
        items += page.get(key, [])
        if not page["more"]:
            assert "next" not in page
            return items, pages
        assert page["next"] and page["next"] != cursor, page
        cursor = page["next"]
    raise AssertionError("paging never ended")


def parsed(objects: list[dict[str, Any]]) -> list[Any]:
    """Each object as stix2 reads it, refusing any custom content: extensions must be defined ones."""
    return [stix2.parse(obj, allow_custom=False) for obj in objects]


def indicators(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["type"] == "indicator"]


def ours(obj: dict[str, Any]) -> dict[str, Any]:
    """The consortium's property extension of an indicator."""
    from taxii.stix import EXTENSION_ID

    return obj["extensions"][EXTENSION_ID]
