"""The real taxii2-client (2.3, v21: Server, ApiRoot, Collection, as_pages) against a live server on
127.0.0.1, as a member's threat-intelligence team runs it."""

from __future__ import annotations

import gc
from typing import Callable, Iterator

import pytest
import requests
from taxii2client.common import TokenAuth
from taxii2client.v21 import Collection, Server, as_pages

from taxii import stix
from tests.factories import md5, pdq, sha256, vpdq

from .conftest import indicators, ours, parsed


class BearerAuth(requests.auth.AuthBase):
    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


@pytest.fixture
def opened() -> Iterator[list]:
    """Endpoints to close after the test: each keeps its HTTP connections alive, and with them the
    live server's threads and their database connections (PostgreSQL would not drop the test
    database). The connection of a refused request stays open until the error that carried its
    response is collected: collected here."""
    endpoints: list = []
    yield endpoints
    for endpoint in endpoints:
        endpoint.close()
    gc.collect()


@pytest.fixture
def discover(server: str, opened: list) -> Callable[..., Server]:
    def make(**credentials) -> Server:
        found = Server(f"{server}/taxii2/", **credentials)
        opened.append(found)
        opened.extend(found.api_roots)
        return found

    return make


def consortium_collection(server: Server) -> Collection:
    root = server.default
    assert server.api_roots == [root] and root.versions == [stix.TAXII_MEDIA_TYPE] and not root.collections[0].can_write
    return next(c for c in root.collections if c.alias == "consortium")


def every_object(pages: list[dict]) -> list[dict]:
    return [obj for page in pages for obj in page.get("objects", [])]


def test_the_client_pages_a_collection_and_resumes_with_added_after(discover, alice, bob, homeoffice, pipeline):
    alice.submit(*(alice.statement([md5(n)], jti=f"md5-{n}", labels=["glorification"]) for n in range(1, 8)))
    pipeline()
    alice.submit(alice.statement([pdq(7), sha256(7)], jti="photo"),
                 alice.statement([vpdq(1, 2, 3)], content_type="video", jti="video"))
    pipeline()
    collection = consortium_collection(discover(auth=TokenAuth(bob.token)))

    pages = list(as_pages(collection.get_objects, per_request=4))
    objects = every_object(pages)
    assert len(pages) == 4 and [len(p["objects"]) for p in pages] == [4, 4, 4, 1]
    assert all(p["more"] and p["next"] for p in pages[:-1]) and not pages[-1]["more"]
    parsed(objects)
    assert [o["type"] for o in objects[:3]] == ["identity", "marking-definition", "extension-definition"]
    assert len(indicators(objects)) == 10 == len({o["id"] for o in indicators(objects)})
    manifest = every_object(list(as_pages(collection.get_manifest, per_request=4)))
    assert [entry["id"] for entry in manifest] == [o["id"] for o in objects]
    seen_until = manifest[-1]["date_added"]

    # New versions: a corroboration, a retraction, two new hashes (one batch, one time).
    homeoffice.submit(homeoffice.statement([md5(1)]))
    alice.submit(alice.retraction("md5-2"))
    pipeline()
    alice.submit(alice.statement([md5(20)]), alice.statement([md5(21)]))
    pipeline()

    pages = list(as_pages(collection.get_objects, per_request=2, added_after=seen_until))
    fresh = every_object(pages)
    parsed(fresh)
    assert len(pages) == 2 and all(o["type"] == "indicator" for o in fresh)
    assert [(ours(o)["value"], o.get("revoked", False), ours(o)["corroboration_count"] if not o.get("revoked") else None)
            for o in fresh] == [(md5(1)["value"], False, 2), (md5(2)["value"], True, None),
                                (md5(20)["value"], False, 1), (md5(21)["value"], False, 1)]
    added = [entry["date_added"] for entry in every_object(list(
        as_pages(collection.get_manifest, per_request=2, added_after=seen_until)))]
    assert added == sorted(added) and len(set(added)) == 4 and added[0] > seen_until
    assert every_object(list(as_pages(collection.get_objects, per_request=2, added_after=added[-1]))) == []

    # The retracted hash: its versions, the last revoked, and only that one by default.
    revoked = fresh[1]["id"]
    versions = collection.object_versions(revoked)["versions"]
    assert len(versions) == 2 and versions[-1] == fresh[1]["modified"]
    assert collection.get_object(revoked)["objects"] == [fresh[1]]
    assert [o.get("revoked", False) for o in collection.get_object(revoked, version="all")["objects"]] == [False, True]


@pytest.mark.parametrize("how", ["token", "bearer", "basic"])
def test_the_client_authenticates_with_the_api_token_three_ways(discover, alice, how):
    credentials = {"token": {"auth": TokenAuth(alice.token)}, "bearer": {"auth": BearerAuth(alice.token)},
                   "basic": {"user": "alice", "password": alice.token}}[how]
    assert consortium_collection(discover(**credentials)).can_read


def test_refusals_reach_the_client_as_taxii_errors(discover, opened, alice, charlie, trusted_group):
    with pytest.raises(requests.HTTPError) as refused:
        discover(auth=TokenAuth("cst_wrong")).refresh()
    status, content_type, body = answer_of(refused.value)
    assert (status, content_type, body["error_code"]) == (401, stix.TAXII_MEDIA_TYPE, "invalid_token")

    group = next(c for c in discover(auth=TokenAuth(alice.token)).default.collections if c.alias == "trusted")
    outsider = Collection(group.url, auth=TokenAuth(charlie.token))
    opened.append(outsider)
    with pytest.raises(requests.HTTPError) as hidden:
        outsider.refresh()
    assert answer_of(hidden.value) == (404, stix.TAXII_MEDIA_TYPE, {
        "title": "Not Found", "description": "No collection with this id is available to you.",
        "error_code": "not_found", "http_status": "404"})


def answer_of(error: requests.HTTPError) -> tuple[int, str, dict]:
    response = error.response
    return response.status_code, response.headers["Content-Type"], response.json()
