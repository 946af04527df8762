"""TAXII's collections obey the one visibility rule. The consortium's collection is the same for every
member and holds nothing of a sharing group's statements, proved two ways on the scenario of
tests/hashes/test_non_interference.py: differentially (what charlie reads over TAXII is the same,
up to renaming opaque ids and ranking times, whether or not the group shares), and directly (no
byte of the group's statements or values in any answer charlie gets). A group's collection is
unknown to outsiders, exactly as an id that names nothing."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings

from consortium_client import jws
from hashes.models import Hash, Statement
from taxii import stix
from tests.factories import flip, md5, pdq_value
from tests.hashes.test_non_interference import FAR, ISO_TIME, reset, scenario

from .conftest import COLLECTIONS, DISCOVERY, all_pages, collection_ids, get, indicators, objects_path, ours, parsed


def headers(response) -> list[tuple[str, str]]:
    """The headers, but the request id, which is new for every request (ops.middleware)."""
    return sorted((name, value) for name, value in response.items() if name != "X-Request-ID")


class Reader:
    """Everything a member reads of one collection over TAXII, every answer's bytes kept."""

    def __init__(self, actor, collection_id: str) -> None:
        self.actor, self.path = actor, objects_path(collection_id)
        self.bodies: list[bytes] = []

    def pages(self, path: str, key: str = "objects", **params: Any) -> list[Any]:
        items, pages = all_pages(self.actor, path, key, **params)
        self.bodies += [p.content + str(headers(p)).encode() for p in pages]
        return items

    def one(self, path: str, **params: Any):
        response = get(self.actor, path, **params)
        self.bodies.append(response.content)
        return response

    def observe(self) -> dict[str, Any]:
        every = self.pages(self.path, **{"match[version]": "all"}, limit=1000)
        ids = list(dict.fromkeys(o["id"] for o in indicators(every)))
        return {
            "discovery": [self.one(DISCOVERY).json(), self.one("/taxii2/api/").json(), self.one(COLLECTIONS).json()],
            "all": every,
            "latest": self.pages(self.path, limit=1000),
            "manifest": self.pages(self.path.replace("/objects/", "/manifest/"), **{"match[version]": "all"}, limit=1000),
            "objects": {i: self.pages(f"{self.path}{i}/", **{"match[version]": "all"}) for i in ids},
            "versions": {i: self.pages(f"{self.path}{i}/versions/", "versions") for i in ids},
        }


def readable_removals(data: Any) -> Any:
    """The server signs a removal when it happens (its iat and jti differ between runs): compare
    what it says, once its signature is checked (as test_non_interference does)."""
    from consortium.server_keys import server_jwks
    from consortium_client.keys import load_public_jwk

    keys = {k["kid"]: load_public_jwk(k) for k in server_jwks()["keys"]}
    if isinstance(data, dict):
        cause = data.get("cause")
        if isinstance(cause, dict) and cause.get("member") == settings.SERVER_ISSUER:
            statement = jws.parse(cause["statement"])
            assert jws.verify_signature(statement, keys[statement.kid])
            data = {**data, "cause": {**cause, "jti": "server",
                                      "statement": {k: v for k, v in statement.payload.items() if k not in ("iat", "jti")}}}
        return {k: readable_removals(v) for k, v in data.items()}
    if isinstance(data, list):
        return [readable_removals(v) for v in data]
    return data


def normalise(data: Any) -> Any:
    """Indicator ids, hash, cluster, dispute and event ids renamed in order of first appearance;
    times and seqs replaced by their rank (only their order is the same in both runs)."""
    data = readable_removals(data)
    times: set[str] = set()
    seqs: set[int] = set()
    names: dict[tuple[str, Any], str] = {}

    def collect(node: Any, key: str | None = None) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                collect(v, k)
        elif isinstance(node, list):
            for v in node:
                collect(v, key)
        elif isinstance(node, str) and ISO_TIME.match(node):
            times.add(node)
        elif key == "seq":
            seqs.add(node)

    collect(data)
    time_rank = {t: f"t{n}" for n, t in enumerate(sorted(times))}
    seq_rank = {s: f"s{n}" for n, s in enumerate(sorted(seqs))}

    def rename(kind: str, value: Any) -> str:
        return names.setdefault((kind, value), f"{kind}{sum(1 for k in names if k[0] == kind)}")

    def walk(node: Any, key: str | None = None, parent: str | None = None) -> Any:
        if isinstance(node, dict):
            return {(rename("indicator", k) if k.startswith("indicator--") else k): walk(v, k, key) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, key, parent) for v in node]
        if isinstance(node, str) and node.startswith("indicator--"):
            return rename("indicator", node)
        if isinstance(node, str) and ISO_TIME.match(node):
            return time_rank[node]
        if key == "seq":
            return seq_rank[node]
        if key in ("hash_id", "hash") and isinstance(node, int):
            return rename("hash", node)
        if key in ("cluster", "previous_cluster"):
            return rename("cluster", node)
        if key == "id" and parent == "dispute":
            return rename("dispute", node)
        if key == "event_id":
            return rename("event", node)
        return node

    return walk(data)


def group_secrets(group_slug: str) -> set[bytes]:
    """Bytes that only the group's statements hold: their JWS, their payloads and signatures (a
    protected header names only the member's key, which its consortium-wide statements show too),
    the group's name and slug, the value only the group shared, the resolution of the group's dispute."""
    secrets = {group_slug.encode(), group_slug.title().encode(), flip(FAR, range(100, 140)).encode(),
               b"the group keeps it"}
    for raw in Statement.objects.filter(share_group__slug=group_slug).values_list("raw", flat=True):
        secrets |= {raw.encode(), *(part.encode() for part in raw.split(".")[1:])}
    return secrets


def test_the_consortium_collection_shows_an_outsider_nothing_of_a_groups_statements(
        alice, bob, charlie, homeoffice, trusted_group, pipeline):
    actors = {"alice": alice, "bob": bob, "charlie": charlie, "homeoffice": homeoffice}
    consortium = stix.collection_id(None)
    scenario(actors, pipeline, hidden=False)
    alone = Reader(charlie, consortium).observe()
    reset()
    scenario(actors, pipeline, hidden=True)
    reader = Reader(charlie, consortium)
    interleaved = reader.observe()

    assert Statement.objects.filter(share_group=trusted_group, state="published").count() >= 13  # the group shared
    assert len(indicators(alone["all"])) > 15 and any(o.get("revoked") for o in alone["all"])
    assert any(ours(o).get("dispute", {}).get("state") == "removed" for o in indicators(alone["all"]))
    parsed(interleaved["all"])
    assert normalise(interleaved) == normalise(alone)

    # Directly: not a byte of what only the group holds, in any answer charlie got.
    secrets = group_secrets("trusted")
    leaks = {secret for secret in secrets for body in reader.bodies if secret in body}
    assert not leaks and len(secrets) > 20

    # The consortium's collection is the same for every member, the group's members included.
    alices = Reader(alice, consortium).observe()
    assert {k: v for k, v in alices.items() if k != "discovery"} == {k: v for k, v in interleaved.items() if k != "discovery"}
    # A hash charlie never saw has no object, answered as an id that names nothing.
    seen = {ours(o)["hash_id"] for o in indicators(interleaved["all"])}
    nothing = get(charlie, f"{objects_path(consortium)}{stix.indicator_id(consortium, 10**9, 0)}/")
    for hash_id in Hash.objects.exclude(pk__in=seen).values_list("pk", flat=True):
        response = get(charlie, f"{objects_path(consortium)}{stix.indicator_id(consortium, hash_id, 0)}/")
        assert (response.status_code, response.content) == (404, nothing.content)


def test_a_group_collection_shows_its_members_what_was_shared_with_the_group_only(
        alice, bob, homeoffice, trusted_group, pipeline):
    homeoffice.submit(homeoffice.statement([md5(1)], labels=["glorification"]), homeoffice.statement([md5(2)]))
    alice.submit(alice.statement([md5(3)], share="trusted", labels=["recruitment"]))
    pipeline()
    bob.submit(bob.statement([md5(1)], share="trusted", labels=["instruction"]),
               bob.feedback(md5(2), "disagree", reasons=["newsworthy"], share="trusted"))
    pipeline()

    group = collection_ids(bob)["trusted"]
    assert collection_ids(alice)["trusted"] == group
    objects, _ = all_pages(bob, objects_path(group))
    parsed(objects)
    found = {ours(o)["value"]: o for o in indicators(objects)}
    # The group's own hash, and what the group said of the consortium's MD5 (only bob's statement);
    # the consortium's MD5 2, on which the group only gave a verdict, is not the group's.
    assert set(found) == {md5(3)["value"], md5(1)["value"]}
    assert ours(found[md5(1)["value"]])["submitters"] == [{"member": "bob", "kind": "platform"}]
    assert found[md5(1)["value"]]["labels"] == ["instruction"]
    assert found[md5(3)["value"]]["labels"] == ["recruitment"]
    assert all(o["id"].startswith(f"indicator--{group[:14]}") for o in found.values())
    # The same hash is a different indicator in the consortium's collection, as the consortium sees it.
    consortium, _ = all_pages(bob, objects_path(collection_ids(bob)["consortium"]))
    by_value = {ours(o)["value"]: o for o in indicators(consortium)}
    assert set(by_value) == {md5(1)["value"], md5(2)["value"]}
    assert by_value[md5(1)["value"]]["labels"] == ["glorification"] and by_value[md5(1)["value"]]["id"] != found[md5(1)["value"]]["id"]
    assert "dispute" not in ours(by_value[md5(2)["value"]]) and ours(by_value[md5(2)["value"]])["feedback"]["disagree"] == 0


def test_a_group_collection_is_unknown_to_outsiders_exactly_as_an_unknown_collection(
        alice, charlie, trusted_group, pipeline):
    alice.submit(alice.statement([md5(1)], share="trusted"), alice.statement([pdq_value(flip(FAR, range(3)))]))
    pipeline()
    group = collection_ids(alice)["trusted"]
    group_indicator = indicators(all_pages(alice, objects_path(group))[0])[0]["id"]
    unknown = str(uuid.uuid4())
    for suffix in ("", "objects/", "manifest/", f"objects/{group_indicator}/", f"objects/{group_indicator}/versions/"):
        outsider = get(charlie, f"{COLLECTIONS}{group}/{suffix}")
        nothing = get(charlie, f"{COLLECTIONS}{unknown}/{suffix}")
        assert outsider.status_code == 404
        assert (outsider.status_code, outsider.content, headers(outsider)) == (
            nothing.status_code, nothing.content, headers(nothing))
    # A member that leaves the group loses its collection with it.
    trusted_group.members.remove(alice.member)
    assert get(alice, f"{COLLECTIONS}{group}/objects/").status_code == 404
    assert list(collection_ids(alice)) == ["consortium"]
