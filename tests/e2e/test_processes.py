"""End to end with real processes: members sign statements with the client package, submit them
over HTTP to gunicorn, Celery workers verify and publish, and the feed carries them back."""

from __future__ import annotations

import pytest

from consortium_client.http import ApiError, ConsortiumClient
from consortium_client.jws import parse, verify_signature
from consortium_client.keys import load_public_jwk
from hashes.models import Corroboration, Event, Hash, Statement
from tests.factories import md5, random_pdq

from .stack import wait_until

pytestmark = pytest.mark.e2e


def test_statements_signed_by_a_member_client_come_back_through_the_feed(stack, actor_factory):
    alice, homeoffice = actor_factory("alice"), actor_factory("homeoffice", kind="government")
    stack.start("web", "worker", "beat")
    stack.wait_for_web()
    alice_api = ConsortiumClient(stack.base_url, alice.token)
    home_api = ConsortiumClient(stack.base_url, homeoffice.token)

    probe = {"signals": [{"type": "pdq", "value": random_pdq(7)["value"]}]}
    assert home_api.request("POST", "/api/v1/match/", probe)["results"][0]["matches"] == []  # web builds its index

    submitted = alice_api.submit([alice.statement([md5(n), random_pdq(n)], labels=["glorification"]) for n in range(50)])
    home_api.submit([homeoffice.statement([md5(n)]) for n in range(10)])
    assert len(submitted["accepted"]) == 50

    wait_until(lambda: len(list(home_api.events())) == 110, timeout=60, what="110 events in the feed")
    events = list(home_api.events())
    assert [e["seq"] for e in events] == list(range(1, 111))
    assert all(alice_api.statement(a["id"])["state"] == "published" for a in submitted["accepted"][:5])

    # Provenance: every statement in the feed verifies against the published JWK Set.
    keys = {k["kid"]: load_public_jwk(k) for k in home_api.keys()["keys"]}
    for event in events:
        for raw in event["hash"]["statements"]:
            parsed = parse(raw)
            assert verify_signature(parsed, keys[parsed.kid])
    corroborated = [e for e in events if e["type"] == "hash.updated"]
    assert len(corroborated) == 10
    # Parallel workers may publish either member's statement first; each md5 ends corroborated by both.
    both = [{"member": "alice", "kind": "platform"}, {"member": "homeoffice", "kind": "government"}]
    assert all(sorted(e["hash"]["submitters"], key=lambda s: s["member"]) == both for e in corroborated)

    # A worker published it; the web process, which built its index before, matches it too.
    wait_until(lambda: home_api.request("POST", "/api/v1/match/", probe)["results"][0]["matches"], timeout=10,
               what="the web process to match a hash a worker published")

    with pytest.raises(ApiError) as error:
        ConsortiumClient(stack.base_url, "cst_nope_nope").feed()
    assert (error.value.status, error.value.code) == (401, "invalid_token")


def test_a_worker_killed_mid_batch_loses_nothing_and_publishes_once(stack, actor_factory):
    alice = actor_factory("alice")
    stack.start("web", "worker", "beat")
    stack.wait_for_web()
    api = ConsortiumClient(stack.base_url, alice.token)
    total = 3000
    for start in range(0, total, 500):
        api.submit([alice.statement([md5(n)]) for n in range(start, start + 500)])

    wait_until(lambda: Statement.objects.filter(state="published").exists(), timeout=60, interval=0.01,
               what="the first published statement")
    stack.kill("worker")
    published_at_kill = Statement.objects.filter(state="published").count()
    assert 0 < published_at_kill < total, "the worker must die with work in hand for this test to mean anything"

    stack.start("worker")  # beat's sweep finds what the dead worker held, in the database
    wait_until(lambda: Statement.objects.filter(state="published").count() == total, timeout=120,
               what="every statement published")

    assert Statement.objects.exclude(state="published").count() == 0
    assert Hash.objects.count() == total
    assert Corroboration.objects.count() == total  # each statement corroborates exactly once
    assert Event.objects.filter(type="hash.added").count() == total
    assert list(Event.objects.values_list("seq", flat=True)) == list(range(1, total + 1))
