"""Non-interference over TAXII (DESIGN.md, Security rules), proved differentially and byte for byte:
two worlds share a past, then differ only in what the sharing group `trusted` does (which of its
own hashes it keeps re-asserting, which consortium hash it gives its verdicts on), with the same
number of events at the same positions, so that what the outsider charlie may see is the same in
both, seq for seq. Every answer charlie gets over TAXII, whatever the filters (match[id] on visible,
hidden and unknown indicators, match[type], match[version], added_after, limit, next), must be the
same bytes, status and headers in both worlds (the feed's gaps in seq, which DESIGN.md admits, are
the same in both by construction)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import django.utils.timezone
from django.core.cache import cache
from django.db import transaction

from distribution import rendering
from hashes.matching import indexes
from hashes.models import Event, Hash
from hashes.services import feed
from taxii import stix
from tests.factories import md5

from .conftest import get, objects_path
from .test_visibility import headers

IAT = 1_790_000_000


class Clock:
    """timezone.now, set by the scenario step by step, and event ids counted: what would otherwise
    differ between the two worlds for reasons that have nothing to do with the group."""

    def __init__(self, monkeypatch) -> None:
        self.at = django.utils.timezone.now().replace(microsecond=0)
        self.ids = 0
        monkeypatch.setattr(django.utils.timezone, "now", lambda: self.at)
        monkeypatch.setattr(feed, "uuid", SimpleNamespace(uuid4=self.event_id))

    def event_id(self) -> uuid.UUID:
        self.ids += 1
        return uuid.UUID(int=self.ids)

    def tick(self) -> None:
        self.at += timedelta(minutes=1)


def visible_value(world: str) -> dict[str, str]:
    """The consortium hash the group gives its verdicts on."""
    return md5(1) if world == "a" else md5(2)


def hidden_value(world: str) -> dict[str, str]:
    """The group hash the group keeps re-asserting."""
    return md5(10) if world == "a" else md5(11)


def suffix(world: str, actors: dict[str, Any], pipeline, clock: Clock) -> None:
    """What happens after the worlds part: the same visible steps, the group's in between."""
    alice, bob, charlie, homeoffice = (actors[k] for k in ("alice", "bob", "charlie", "homeoffice"))

    def step(actor, *statements: str) -> None:
        clock.tick()
        actor.submit(*statements)
        pipeline()

    said = {"n": 0}

    def group_round(n: int) -> None:
        for i in range(n):
            member = (alice, bob)[i % 2]
            said["n"] += 1
            step(member, member.statement([hidden_value(world)], jti=f"g{world}{n}{i}", iat=IAT, share="trusted",
                                          labels=["glorification"] if i % 3 else []))
            step(member, member.feedback(visible_value(world), ("seen", "agree")[said["n"] // 2 % 2], jti=f"f{world}{n}{i}",
                                         iat=IAT, share="trusted"))

    group_round(7)
    step(homeoffice, homeoffice.statement([md5(1), md5(2)], jti="h2", iat=IAT, labels=["recruitment"]))
    group_round(6)
    step(charlie, charlie.retraction("c1", jti="cr1", iat=IAT))
    group_round(3)
    step(charlie, charlie.statement([md5(3)], jti="c2", iat=IAT))  # md5(3) again: a new indicator
    group_round(2)


def observe(charlie, probes: dict[str, int]) -> list[tuple[Any, ...]]:
    """Every answer charlie gets, as bytes: each query's pages (following `next`), and a few `next`
    and `added_after` values asked directly."""
    consortium = stix.collection_id(None)
    path = objects_path(consortium)
    manifest = path.replace("/objects/", "/manifest/")
    ids = {name: stix.indicator_id(consortium, hash_id, life) for name, (hash_id, life) in probes.items()}
    queries: list[tuple[str, dict[str, str]]] = []
    for limit in ("1", "2", "3", "7", ""):
        queries += [(path, {"limit": limit}), (path, {"limit": limit, "match[version]": "all"})]
    queries += [(path, {"match[version]": "first", "limit": "2"}), (manifest, {"limit": "3", "match[version]": "all"}),
                (path, {"match[type]": "indicator", "limit": "2"}), (path, {"match[type]": "identity,indicator"})]
    for name, stix_id in ids.items():
        for limit in ("1", "4", ""):
            queries += [(path, {"match[id]": stix_id, "limit": limit}),
                        (path, {"match[id]": stix_id, "limit": limit, "match[version]": "all"}),
                        (f"{path}{stix_id}/", {"limit": limit}), (f"{path}{stix_id}/versions/", {"limit": limit})]
        queries.append((manifest, {"match[id]": f"{stix_id},{stix.IDENTITY_ID}", "limit": "1"}))
    queries.append((path, {"match[id]": ",".join(ids.values()), "limit": "2", "match[version]": "all"}))
    answers: list[tuple[Any, ...]] = []
    for where, params in queries:
        params = {k: v for k, v in params.items() if v}
        cursor = None
        for _ in range(500):
            response = get(charlie, where, **params, **({"next": cursor} if cursor else {}))
            answers.append((where, params, cursor, response.status_code, response.content, headers(response)))
            if response.status_code != 200 or not response.json()["more"]:
                break
            cursor = response.json()["next"]
        else:
            raise AssertionError(f"paging never ended: {where} {params}")
    last = Event.objects.order_by("-seq").values_list("seq", flat=True).first()
    for after in range(-4, last + 2, 3):  # every third position, hidden events' included
        for params in ({"limit": "1"}, {"limit": "1", "match[id]": ids["visible"]}, {"limit": "1", "match[id]": ids["hidden"]}):
            response = get(charlie, path, next=str(after), **params)
            answers.append((path, params, after, response.status_code, response.content, headers(response)))
    first = Event.objects.order_by("seq").values_list("occurred_at", flat=True).first()
    for minutes in range(0, 40, 2):
        moment = stix.timestamp(first + timedelta(minutes=minutes, microseconds=30))
        for params in ({"limit": "2"}, {"match[id]": ids["visible"], "match[version]": "all"}):
            response = get(charlie, path, added_after=moment, **params)
            answers.append((path, params, moment, response.status_code, response.content, headers(response)))
    return answers


def forget_world() -> None:
    """What lives outside the database and the world it rolled back may have filled."""
    indexes.reset()
    rendering.clear_caches()
    cache.clear()


def test_an_outsider_gets_the_same_taxii_bytes_whatever_a_hidden_group_does(
        alice, bob, charlie, homeoffice, trusted_group, pipeline, monkeypatch):
    actors = {"alice": alice, "bob": bob, "charlie": charlie, "homeoffice": homeoffice}
    clock = Clock(monkeypatch)

    # The shared past: two consortium hashes, two group hashes, charlie's own.
    for actor, statement in (
            (homeoffice, homeoffice.statement([md5(1), md5(2)], jti="h1", iat=IAT, labels=["glorification"])),
            (alice, alice.statement([md5(10), md5(11)], jti="g0", iat=IAT, share="trusted")),
            (charlie, charlie.statement([md5(3)], jti="c1", iat=IAT))):
        clock.tick()
        actor.submit(statement)
        pipeline()
    hashes = {h.value: h.pk for h in Hash.objects.all()}
    probes = {"visible": (hashes[md5(1)["value"]], 0), "other": (hashes[md5(2)["value"]], 0),
              "comeback": (hashes[md5(3)["value"]], 1), "hidden": (hashes[md5(10)["value"]], 0),
              "hidden2": (hashes[md5(11)["value"]], 0), "unknown": (max(hashes.values()) + 50, 0)}
    past = (clock.at, clock.ids)

    worlds = {}
    for world in ("a", "b"):
        clock.at, clock.ids = past
        forget_world()
        point = transaction.savepoint()
        suffix(world, actors, pipeline, clock)
        seqs = list(Event.objects.order_by("seq").values_list("seq", "hash_id"))
        worlds[world] = (seqs, observe(charlie, probes))
        transaction.savepoint_rollback(point)
    forget_world()

    (seqs_a, seen_a), (seqs_b, seen_b) = worlds["a"], worlds["b"]
    # The worlds have their events at the same positions, on different hashes.
    assert [s for s, _ in seqs_a] == [s for s, _ in seqs_b] and len(seqs_a) > 40
    assert seqs_a != seqs_b
    # Charlie was shown something (several pages, versions of every visible indicator).
    bodies = b"".join(answer[4] for answer in seen_a)
    assert bodies.count(b'"more":true') > 50 and md5(3)["value"].encode() in bodies
    for answer_a, answer_b in zip(seen_a, seen_b, strict=True):
        assert answer_a == answer_b
