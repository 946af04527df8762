"""The invariants that one careless line would break without any other test noticing (issue 14):
visibility's clauses, family distances, the scope of every route, incident pushes to suspended
members, the iat window, constant-time token checks, and that nothing of a group's statements
leaves by any way out. `python tests/mutations/run.py` checks that these tests fail when the code
they guard is changed.

alice and bob share in "trusted"; charlie and homeoffice are outside every group."""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone as dt_timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from django.urls import resolve
from rest_framework.test import APIClient

from consortium.server_keys import server_jwks
from consortium_client.webhooks import load_jwks
from distribution import rendering
from distribution.models import Delivery
from distribution.services import delivering, dispatching
from hashes.models import Corroboration, Hash, HashLink, Incident, Statement
from hashes.selectors import StatementFacts, visible_facts
from hashes.services import verification
from hashes.visibility import Viewer
from members import services as member_services
from members.models import ApiToken, Member
from members.services import member_set_status, token_create
from tests.actors import Actor
from tests.distribution.helpers import Clock, drive, subscribe
from tests.distribution.receiver import Receiver
from tests.factories import BASE_PDQ, flip, md5, pdq_value
from tests.members.routes import api_routes, sample_path


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def inbox(db, settings) -> Iterator[Callable[[], Receiver]]:
    """Webhook receivers on 127.0.0.1 over http, as in embedded mode, whichever database the suite
    runs on; the rendering caches start empty, so what one test rendered never answers another."""
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    settings.WEBHOOK_REQUIRE_HTTPS = False
    settings.WEBHOOK_TIMEOUT_SECONDS = 2.0
    settings.WEBHOOK_CONNECT_TIMEOUT_SECONDS = 1.0
    rendering.clear_caches()
    started: list[Receiver] = []

    def make() -> Receiver:
        started.append(Receiver(public_keys=load_jwks(server_jwks())).start())
        return started[-1]

    yield make
    for receiver in started:
        receiver.close()


def match(actor: Actor, *signals: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """The hashes each signal matches, as the actor sees them."""
    response = actor.api.post("/api/v1/match/", {"signals": list(signals)}, format="json")
    assert response.status_code == 200, response.content
    return [[m["hash"] for m in result["matches"]] for result in response.json()["results"]]


def pump_in_order(clock: Clock, *subscriptions: dict[str, Any]) -> None:
    """Announce the feed head and pump these subscriptions one after the other, in this order."""
    dispatching.dispatch(now=clock())
    for subscription in subscriptions:
        list(delivering.pump([subscription["id"]], clock=clock, budget=float("inf")))


# --- the author's own clause -----------------------------------------------------------------------

def test_a_member_that_left_the_group_it_shared_with_still_sees_its_own_statement_everywhere(
    alice, bob, charlie, trusted_group, inbox, clock, pipeline,
):
    statement = alice.statement([pdq_value(BASE_PDQ)], share="trusted", jti="mine")
    alice.submit(statement)
    pipeline()
    trusted_group.members.remove(alice.member)
    own = inbox()
    subscribe(alice, own, after=0)
    (hash_,) = Hash.objects.all()

    assert [(e["type"], e["hash"]["id"], e["hash"]["statements"]) for e in alice.feed()["events"]] == [
        ("hash.added", hash_.pk, [statement])]
    detail = alice.api.get(f"/api/v1/hashes/{hash_.pk}/")
    assert detail.status_code == 200 and detail.json()["statements"] == [statement]
    assert [c["member"] for c in detail.json()["corroborations"]] == ["alice"]
    page = alice.api.get(f"/api/v1/hashes/{hash_.pk}/statements/").json()
    assert ([s["statement"] for s in page["statements"]], page["next_offset"]) == ([statement], None)
    assert [[h["statements"] for h in hashes] for hashes in match(alice, pdq_value(BASE_PDQ))] == [[[statement]]]
    drive(clock)
    assert [e["hash"]["statements"] for e in own.events()] == [[statement]]
    # The group still sees it; nobody else ever did.
    assert [e["hash"]["id"] for e in bob.feed()["events"]] == [hash_.pk]
    assert charlie.feed()["events"] == [] and match(charlie, pdq_value(BASE_PDQ)) == [[]]


def test_the_visibility_rule_has_three_clauses_and_no_fourth():
    """A statement is visible when shared with everyone, with one of the viewer's groups, or made by
    the viewer; nothing else."""
    viewer = Viewer(member_id=1, group_ids=frozenset({10}))

    assert viewer.sees(share_group_id=None, member_id=2)
    assert viewer.sees(share_group_id=10, member_id=2)
    assert viewer.sees(share_group_id=11, member_id=1)
    assert not viewer.sees(share_group_id=11, member_id=2)


def facts(statement_id: str, *, member_id: int, share_group_id: int | None) -> StatementFacts:
    return StatementFacts(id=statement_id, jti=statement_id, kind="hash", member_id=member_id, member_slug="m",
                          member_kind="platform", share_group_id=share_group_id, content_type="photo", raw="x",
                          labels=())


def test_the_second_lock_drops_a_hidden_statement_even_when_it_was_read():
    """visible_facts checks each statement again, whatever its caller read (the webhook renderer
    shares what it read for one member with every other)."""
    viewer = Viewer(member_id=1, group_ids=frozenset({10}))
    read = {"a": facts("a", member_id=2, share_group_id=None), "b": facts("b", member_id=2, share_group_id=11),
            "c": facts("c", member_id=1, share_group_id=11), "d": facts("d", member_id=2, share_group_id=10)}

    assert [f.id for f in visible_facts(viewer, ["a", "b", "c", "d", "e"], read)] == ["a", "c", "d"]


# --- links to hidden hashes ------------------------------------------------------------------------

def test_links_to_hashes_the_reader_may_not_see_are_withheld_on_every_way_out(
    alice, bob, trusted_group, inbox, clock, pipeline,
):
    """bob's group statement makes a hash 20 bits from alice's group hash, linked to it. Once bob has
    left the group he still sees his own hash, but neither alice's nor the link to it."""
    alice.submit(alice.statement([pdq_value(BASE_PDQ)], share="trusted"))
    pipeline()
    variant = flip(BASE_PDQ, range(20))
    bob.submit(bob.statement([pdq_value(variant)], share="trusted"))
    pipeline()
    alices, bobs = Hash.objects.order_by("pk")
    link = {"hash": alices.pk, "distance": 20}
    assert alice.api.get(f"/api/v1/hashes/{bobs.pk}/").json()["links"] == [link]  # a reader who may see both

    trusted_group.members.remove(bob.member)
    received = inbox()
    subscribe(bob, received, after=0)
    drive(clock)

    assert [(e["hash"]["id"], e["hash"]["links"]) for e in bob.feed()["events"]] == [(bobs.pk, [])]
    assert bob.api.get(f"/api/v1/hashes/{bobs.pk}/").json()["links"] == []
    assert [[(h["id"], h["links"]) for h in hashes] for hashes in match(bob, pdq_value(variant))] == [[(bobs.pk, [])]]
    assert [(e["hash"]["id"], e["hash"]["links"]) for e in received.events()] == [(bobs.pk, [])]
    assert bob.api.get(f"/api/v1/hashes/{alices.pk}/").status_code == 404
    assert [e["hash"]["links"] for e in alice.feed()["events"]] == [[], [link]]


# --- variant families at the edge of the match distance -------------------------------------------

AT_MATCH_DISTANCE = flip(BASE_PDQ, range(31))


def test_pdqs_exactly_the_match_distance_apart_in_one_batch_share_a_family(alice, pipeline):
    alice.submit(alice.statement([pdq_value(BASE_PDQ)]), alice.statement([pdq_value(AT_MATCH_DISTANCE)]))
    pipeline()

    first, second = Hash.objects.order_by("pk")
    assert second.cluster_id == first.cluster_id
    assert list(HashLink.objects.values_list("hash", "linked_to", "distance")) == [(second.pk, first.pk, 31)]


def test_pdqs_exactly_the_match_distance_apart_across_batches_share_a_family(alice, bob, pipeline):
    alice.submit(alice.statement([pdq_value(BASE_PDQ)]))
    pipeline()
    bob.submit(bob.statement([pdq_value(AT_MATCH_DISTANCE)]))
    pipeline()

    first, second = Hash.objects.order_by("pk")
    assert second.cluster_id == first.cluster_id
    assert bob.feed()["events"][-1]["hash"]["links"] == [{"hash": first.pk, "distance": 31}]


def published_together() -> bool:
    return Statement.objects.values("published_at").distinct().count() == 1


def test_a_group_pdq_and_an_outsiders_pdq_4_bits_apart_in_one_batch_stay_apart(alice, charlie, trusted_group, pipeline):
    alice.submit(alice.statement([pdq_value(BASE_PDQ)], share="trusted"))
    charlie.submit(charlie.statement([pdq_value(flip(BASE_PDQ, range(4)))]))
    pipeline()

    assert published_together()
    group_hash, charlies = Hash.objects.order_by("pk")
    assert (group_hash.share_group_id, charlies.share_group_id) == (trusted_group.pk, None)
    assert charlies.cluster_id != group_hash.cluster_id and not HashLink.objects.exists()
    assert (group_hash.corroborations.count(), charlies.corroborations.count()) == (1, 1)
    assert [e["hash"]["id"] for e in charlie.feed()["events"]] == [charlies.pk]


def test_a_group_video_and_an_outsiders_copy_in_one_batch_stay_apart(alice, charlie, trusted_group, pipeline):
    frames = [flip(BASE_PDQ, range(n * 64, n * 64 + 48)) for n in range(4)]

    def video(values: list[str]) -> dict[str, Any]:
        return {"type": "vpdq", "frames": [{"i": i, "t": float(i), "pdq": v, "q": 90} for i, v in enumerate(values)]}

    alice.submit(alice.statement([video(frames)], share="trusted", content_type="video"))
    charlie.submit(charlie.statement([video([flip(v, [200, 201]) for v in frames])], content_type="video"))
    pipeline()

    assert published_together()
    group_hash, charlies = Hash.objects.order_by("pk")
    assert charlies.cluster_id != group_hash.cluster_id and not HashLink.objects.exists()
    assert (group_hash.corroborations.count(), charlies.corroborations.count()) == (1, 1)


# --- verification ----------------------------------------------------------------------------------

NOW = datetime(2026, 1, 1, tzinfo=dt_timezone.utc)


def at(now: datetime) -> verification.Context:
    return verification.Context(keys={}, labels={}, incidents={}, groups_by_member={}, own_statements={}, now=now)


@pytest.mark.parametrize("ahead", [-3600, 0, 299, 300])
def test_an_iat_up_to_300_seconds_ahead_is_accepted(ahead):
    iat = int(NOW.timestamp()) + ahead

    assert verification.check_iat({"iat": iat}, at(NOW)) == NOW + timedelta(seconds=ahead)


@pytest.mark.parametrize("ahead", [301, 3000])
def test_an_iat_more_than_300_seconds_ahead_is_refused(ahead):
    with pytest.raises(verification.Rejection) as refused:
        verification.check_iat({"iat": int(NOW.timestamp()) + ahead}, at(NOW))

    assert refused.value.code == "iat_in_future"


def test_a_negative_iat_is_invalid():
    with pytest.raises(verification.Rejection) as refused:
        verification.check_iat({"iat": -1}, at(NOW))

    assert refused.value.code == "iat_invalid"


def test_verifying_again_never_touches_a_statement_past_received(alice, pipeline):
    """A redelivered message or the sweep may hand a worker ids that are done already."""
    published = alice.submit(alice.statement([md5(1)]))["accepted"][0]["id"]
    rejected = alice.submit(alice.statement([{"type": "md5", "value": "bad"}]))["accepted"][0]["id"]
    pipeline()
    before = list(Statement.objects.order_by("id").values_list("id", "state", "rejection_code", "verified_at"))

    assert verification.verify_batch([published, rejected]) == 0

    assert list(Statement.objects.order_by("id").values_list("id", "state", "rejection_code", "verified_at")) == before
    assert Statement.objects.get(id=published).state == "published"


# --- credentials -----------------------------------------------------------------------------------

def test_token_digests_are_compared_in_constant_time(alice, monkeypatch):
    """A digest compared with == or != leaks, by how long the answer takes, how much of it matched."""
    compared: list[tuple[Any, Any]] = []
    constant_time = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return constant_time(a, b)

    monkeypatch.setattr(member_services.hmac, "compare_digest", spy)
    stored = ApiToken.objects.get(member=alice.member).digest
    wrong = alice.token[:-4] + ("AAAA" if not alice.token.endswith("AAAA") else "BBBB")

    assert alice.api.get("/api/v1/me/").status_code == 200
    refused = APIClient()
    refused.credentials(HTTP_AUTHORIZATION=f"Bearer {wrong}")
    assert refused.get("/api/v1/me/").status_code == 401

    digest = lambda token: hashlib.sha256(token.encode()).hexdigest()  # noqa: E731
    assert (stored, digest(alice.token)) in compared and (stored, digest(wrong)) in compared


# --- the scope of every route and method ----------------------------------------------------------

SCOPES: dict[str, dict[str, str | None]] = {
    "api/v1/me/": {"GET": None},
    "api/v1/keys/": {"GET": "read", "POST": "submit"},
    "api/v1/statements/": {"GET": "read", "POST": "submit"},
    "api/v1/statements/<uuid:statement_id>/": {"GET": "read"},
    "api/v1/hashes/<int:hash_id>/": {"GET": "read"},
    "api/v1/hashes/<int:hash_id>/statements/": {"GET": "read"},
    "api/v1/feed/": {"GET": "read"},
    "api/v1/disputes/": {"GET": "read"},
    "api/v1/stats/": {"GET": "read"},
    "api/v1/match/": {"POST": "match"},
    "api/v1/hash/": {"POST": "match"},
    "api/v1/hash/jobs/": {"POST": "match"},
    "api/v1/hash/jobs/<uuid:job_id>/": {"GET": "match"},
    "api/v1/subscriptions/": {"GET": "subscribe", "POST": "subscribe"},
    "api/v1/subscriptions/<uuid:subscription_id>/": {"GET": "subscribe", "PATCH": "subscribe", "DELETE": "subscribe"},
    "api/v1/subscriptions/<uuid:subscription_id>/test/": {"POST": "subscribe"},
    "api/v1/subscriptions/<uuid:subscription_id>/replay/": {"POST": "subscribe"},
    "api/v1/subscriptions/<uuid:subscription_id>/deliveries/": {"GET": "subscribe"},
}
ALL_SCOPES = tuple(ApiToken.Scope.values)
ROUTE_METHODS = [(route, method, scope) for route, methods in SCOPES.items() for method, scope in methods.items()]


def implemented_methods(route: str) -> set[str]:
    view = resolve(sample_path(route)).func.view_class
    return {m.upper() for m in view.http_method_names if m not in ("head", "options") and hasattr(view, m)}


def test_every_route_and_method_of_the_api_has_an_entry_in_the_scope_table():
    """A new route, or a new method on a route, must say here which scope it needs."""
    assert sorted(SCOPES) == api_routes()
    assert {route: set(methods) for route, methods in SCOPES.items()} == {
        route: implemented_methods(route) for route in api_routes()}


def with_scopes(member: Member, *scopes: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token_create(member=member, scopes=scopes).plaintext}")
    return api


def request(api: APIClient, method: str, path: str):
    return api.generic(method, path, "{}", content_type="application/json")


@pytest.mark.parametrize("route,method,scope", ROUTE_METHODS, ids=[f"{m}:{r}" for r, m, _ in ROUTE_METHODS])
def test_each_route_and_method_needs_its_scope_and_no_other(alice, route, method, scope):
    path = sample_path(route)
    if scope is None:
        for only in ALL_SCOPES:
            assert request(with_scopes(alice.member, only), method, path).status_code not in (401, 403)
        return
    without = with_scopes(alice.member, *(s for s in ALL_SCOPES if s != scope))
    only = with_scopes(alice.member, scope)

    refused = request(without, method, path)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "insufficient_scope"), refused.content
    assert repr(scope) in refused.json()["error"]["message"]
    served = request(only, method, path)
    assert served.status_code not in (401, 403), served.content
    if method == "GET":  # HEAD needs what GET needs
        assert without.head(path).status_code == 403
        assert only.head(path).status_code not in (401, 403)


# --- incident pushes and suspended members ---------------------------------------------------------

@pytest.fixture
def christchurch(db) -> Incident:
    return Incident.objects.create(slug="christchurch", name="Christchurch")


def test_incident_events_are_not_pushed_to_a_suspended_member(
    bob, charlie, homeoffice, christchurch, inbox, clock, pipeline,
):
    bobs_inbox, charlies_inbox = inbox(), inbox()
    subscribe(bob, bobs_inbox, after=0)
    charlies = subscribe(charlie, charlies_inbox, after=0)
    member_set_status(member=bob.member, status=Member.Status.SUSPENDED)
    homeoffice.submit(homeoffice.statement([md5(1)], incident="christchurch"))
    pipeline()

    made = dispatching.dispatch(now=clock())

    assert [str(d.subscription_id) for d in Delivery.objects.filter(pk__in=made.priority)] == [charlies["id"]]
    assert [str(s) for s in made.woken] == [charlies["id"]]
    assert delivering.push_deliveries(made.priority, clock=clock) == ["delivered"]
    drive(clock)
    assert bobs_inbox.received == []
    assert [r.body["data"]["lane"] for r in charlies_inbox.received] == ["priority", "main"]


def test_a_push_made_before_its_member_was_suspended_is_not_sent(bob, homeoffice, christchurch, inbox, clock, pipeline):
    received = inbox()
    subscribe(bob, received, after=0)
    homeoffice.submit(homeoffice.statement([md5(1)], incident="christchurch"))
    pipeline()
    made = dispatching.dispatch(now=clock())
    assert len(made.priority) == 1
    member_set_status(member=bob.member, status=Member.Status.SUSPENDED)

    assert delivering.push_deliveries(made.priority, clock=clock) == []

    assert received.received == []


# --- not a byte of a group's statements leaves the group ------------------------------------------

SECRET_NOTE = "only-the-trusted-group-may-read-this"
GROUP_ONLY_MD5 = md5(901)
SHARED_MD5 = md5(902)  # the group holds it first, then the Home Office shares it with everyone
GROUP_ONLY_PDQ = flip(BASE_PDQ, range(128))
GROUP_ONLY_FAMILY = flip(GROUP_ONLY_PDQ, range(40))  # a second group family...
GROUP_BRIDGE = flip(GROUP_ONLY_PDQ, range(20))  # ...which the group's bridge merges into the first
NEAR = flip(BASE_PDQ, range(3))  # the group corroborates the Home Office's PDQ with it
LINKED = flip(BASE_PDQ, range(200, 220))  # a group hash linked to the Home Office's PDQ


def share_in_the_group_and_outside(alice, charlie, homeoffice, pipeline) -> list[str]:
    """The group's statements interleaved with everyone's: a value only the group holds, a value it
    held first, a corroboration of a consortium hash, a group hash linked to one, a merge of two
    group families, a retraction, an incident. Returns the group's statements."""
    secret = {"share": "trusted", "labels": ["recruitment"], "note": SECRET_NOTE}
    group = [alice.statement([GROUP_ONLY_MD5, pdq_value(GROUP_ONLY_PDQ)], jti="trusted-1", incident="christchurch",
                             **secret),
             alice.statement([SHARED_MD5], jti="trusted-2", **secret),
             alice.statement([pdq_value(GROUP_ONLY_FAMILY)], jti="trusted-3", **secret)]
    alice.submit(*group)
    pipeline()
    homeoffice.submit(homeoffice.statement([SHARED_MD5, pdq_value(BASE_PDQ)], jti="h1", labels=["glorification"],
                                           incident="christchurch"))
    pipeline()
    group += [alice.statement([pdq_value(NEAR)], jti="trusted-4", **secret),
              alice.statement([pdq_value(LINKED)], jti="trusted-5", **secret),
              alice.statement([pdq_value(GROUP_BRIDGE)], jti="trusted-6", **secret)]
    alice.submit(*group[3:])
    pipeline()
    charlie.submit(charlie.statement([md5(903)], jti="c1"))
    pipeline()
    group.append(alice.retraction("trusted-2", reason=SECRET_NOTE, jti="trusted-7"))
    alice.submit(group[-1])
    pipeline()
    return group


def everything_read_by(actor: Actor, received: Receiver, subscription: dict[str, Any]) -> list[Any]:
    """Every answer the actor can get about what was shared, and every webhook it received."""
    answers: list[Any] = []
    after = 0
    while True:
        page = actor.api.get(f"/api/v1/feed/?after={after}&limit=1").json()
        answers.append(page)
        after = page["next_after"]
        if not page["has_more"]:
            break
    for hash_id in [*Hash.objects.values_list("pk", flat=True), 10**6]:
        answers.append(actor.api.get(f"/api/v1/hashes/{hash_id}/").json())
        answers.append(actor.api.get(f"/api/v1/hashes/{hash_id}/statements/").json())
    queries = [GROUP_ONLY_MD5, SHARED_MD5, md5(903)] + [
        pdq_value(v) for v in (GROUP_ONLY_PDQ, GROUP_ONLY_FAMILY, GROUP_BRIDGE, BASE_PDQ, NEAR, LINKED)]
    results = actor.api.post("/api/v1/match/", {"signals": queries}, format="json").json()["results"]
    answers.append([{k: v for k, v in result.items() if k != "query"} for result in results])  # not its own words
    answers.append(actor.api.get("/api/v1/statements/").json())
    for statement_id in Statement.objects.values_list("id", flat=True):
        answers.append(actor.api.get(f"/api/v1/statements/{statement_id}/").json())
    answers.append(actor.api.get(f"/api/v1/subscriptions/{subscription['id']}/deliveries/").json())
    answers += [{"headers": r.headers, "body": r.body} for r in received.received]
    answers += read_over_taxii(actor)
    return answers


def read_over_taxii(actor: Actor) -> list[Any]:
    """Every TAXII collection the actor may read: every version of every object, the manifest, each
    object's versions, and an indicator id for every hash (answered or refused)."""
    from taxii.stix import indicator_id

    answers: list[Any] = [actor.api.get(path).json() for path in ("/taxii2/", "/taxii2/api/")]
    listed = actor.api.get("/taxii2/api/collections/").json()
    answers.append(listed)
    for collection in listed["collections"]:
        base = f"/taxii2/api/collections/{collection['id']}"
        for what in ("objects", "manifest"):
            cursor = None
            while True:
                page = actor.api.get(f"{base}/{what}/", {"match[version]": "all", "limit": 3,
                                                         **({"next": cursor} if cursor else {})}).json()
                answers.append(page)
                if not page["more"]:
                    break
                cursor = page["next"]
        for hash_id in [*Hash.objects.values_list("pk", flat=True), 10**6]:
            for suffix in ("", "versions/"):
                answers.append(actor.api.get(f"{base}/objects/{indicator_id(collection['id'], hash_id, 0)}/{suffix}",
                                             {"match[version]": "all"}).json())
    return answers


def ids_in(node: Any) -> tuple[set[int], set[int]]:
    """The ids of the hashes (a hash view's own, a link's) and of the families that answers show."""
    hashes: set[int] = set()
    clusters: set[int] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "signal_type" in item:
                hashes.add(item["id"] if "id" in item else item["hash_id"])  # a TAXII indicator's extension: hash_id
                clusters |= {item[k] for k in ("cluster", "previous_cluster") if k in item}
            if isinstance(item.get("hash"), int):
                hashes.add(item["hash"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return hashes, clusters


def test_not_a_byte_of_a_group_only_statement_leaves_by_any_way_out(
    alice, bob, charlie, homeoffice, trusted_group, christchurch, inbox, clock, pipeline, settings,
):
    """Checked without the visibility rule: charlie, outside the group, never gets a byte that only
    the group's statements hold, nor the id of a hash or family only the group's statements made;
    he sees exactly the hashes that a consortium-wide statement ever asserted, and of each only the
    consortium-wide statements that assert it now."""
    settings.WEBHOOK_BATCH_SIZE = 1  # each event a window of its own, shared by every viewer who sees it alike
    bobs_inbox, charlies_inbox = inbox(), inbox()
    bobs, charlies = subscribe(bob, bobs_inbox, after=0), subscribe(charlie, charlies_inbox, after=0)
    group = share_in_the_group_and_outside(alice, charlie, homeoffice, pipeline)
    # bob's batches first: the renderer's shared caches then hold the group's statements when
    # charlie's are made.
    pump_in_order(clock, bobs, charlies)
    drive(clock)

    needles = {"trusted", "recruitment", "alice", GROUP_ONLY_MD5["value"], GROUP_ONLY_PDQ, GROUP_ONLY_FAMILY,
               GROUP_BRIDGE, LINKED}
    for statement in group:
        _, payload, signature = statement.split(".")
        needles |= {payload, signature}
    seen_by_bob = json.dumps(everything_read_by(bob, bobs_inbox, bobs))
    assert [needle for needle in needles if needle not in seen_by_bob] == []  # the group did share all of it
    answers = everything_read_by(charlie, charlies_inbox, charlies)
    seen_by_charlie = json.dumps(answers)
    assert [needle for needle in needles | {SECRET_NOTE} if needle in seen_by_charlie] == []

    assert "previous_cluster" in seen_by_bob  # the group's families merged
    group_hashes = Hash.objects.exclude(share_group=None)
    hashes, clusters = ids_in(answers)
    assert hashes and hashes.isdisjoint(group_hashes.values_list("pk", flat=True))
    assert clusters and clusters.isdisjoint(group_hashes.values_list("cluster_id", flat=True))
    consortium_hashes = set(
        Hash.objects.filter(corroborations__statement__share_group=None).values_list("pk", flat=True))
    fed = {e["hash"]["id"] for page in answers if "events" in page for e in page["events"]}
    assert fed == consortium_hashes
    for hash_id in consortium_hashes:
        live = Corroboration.objects.filter(hash_id=hash_id, statement__share_group=None, retracted_at=None)
        page = charlie.api.get(f"/api/v1/hashes/{hash_id}/statements/").json()
        assert [s["id"] for s in page["statements"]] == [str(s) for s in live.order_by("id").values_list(
            "statement_id", flat=True)]
        assert page["next_offset"] is None
    nowhere = charlie.api.get("/api/v1/hashes/1000000/").json()
    for hash_id in group_hashes.values_list("pk", flat=True):
        assert charlie.api.get(f"/api/v1/hashes/{hash_id}/").json() == nowhere


# --- the PostgreSQL-only tests ---------------------------------------------------------------------

def test_postgresql_only_tests_are_skipped_when_collected_not_once_their_database_is_set_up():
    """A transactional test that skips after its database was set up flushes it on teardown, and
    the next transactional test on SQLite then fails; skip with tests.databases.postgresql_only."""
    offenders = []
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            calls = {ast.unparse(n.func) for n in ast.walk(node) if isinstance(n, ast.Call)}
            names = {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
            if "pytest.skip" in calls and "vendor" in names:
                offenders.append(f"{path.name}::{node.name}")

    assert offenders == []
