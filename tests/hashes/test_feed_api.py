from __future__ import annotations

import json
from typing import Any

import pytest

from consortium_client import jws
from consortium_client.keys import load_public_jwk
from tests.actors import Actor
from tests.factories import BASE_PDQ, flip, md5, pdq_value


def test_a_submitted_statement_reaches_the_feed_with_its_submitter(alice, bob, pipeline):
    submitted = alice.submit(alice.statement([md5(7)], labels=["glorification"]))
    pipeline()

    events = bob.feed()["events"]

    assert [e["type"] for e in events] == ["hash.added"]
    assert events[0]["hash"]["value"] == f"{7:032x}"
    assert events[0]["hash"]["submitters"] == [{"member": "alice", "kind": "platform"}]
    assert events[0]["hash"]["labels"] == ["glorification"]
    assert alice.api.get(f"/api/v1/statements/{submitted['accepted'][0]['id']}/").json()["state"] == "published"


def test_the_feed_pages_by_seq_without_gaps(alice, pipeline):
    alice.submit(*[alice.statement([md5(n)]) for n in range(25)])
    pipeline()

    seen, after = [], 0
    while True:
        page = alice.feed(after=after, limit=10)
        seen += [e["seq"] for e in page["events"]]
        after = page["next_after"]
        if not page["has_more"]:
            break

    assert seen == list(range(1, 26))
    assert alice.feed(after=after)["events"] == [] and alice.feed(after=after)["next_after"] == after


def test_the_feed_skips_invisible_events_without_losing_its_place(alice, bob, charlie, trusted_group, pipeline):
    alice.submit(*[alice.statement([md5(n)], share="trusted") for n in range(30)])
    alice.submit(alice.statement([md5(1000)]))
    pipeline()

    page = charlie.feed(after=0, limit=5)

    assert [e["hash"]["value"] for e in page["events"]] == [f"{1000:032x}"]
    assert page["next_after"] == 31 and page["has_more"] is False


def test_a_page_of_only_invisible_events_still_moves_the_reader_on(alice, charlie, trusted_group, pipeline):
    alice.submit(*[alice.statement([md5(n)], share="trusted") for n in range(30)])
    pipeline()

    page = charlie.feed(after=0, limit=5)

    assert (page["events"], page["next_after"], page["has_more"]) == ([], 30, False)

@pytest.mark.parametrize("query", ["after=-1", "after=x", "limit=0", "limit=abc"])
def test_bad_feed_parameters_are_refused(alice, query):
    response = alice.api.get(f"/api/v1/feed/?{query}")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_the_feed_limit_is_capped(alice, pipeline, settings):
    settings.FEED_MAX_LIMIT = 3
    alice.submit(*[alice.statement([md5(n)]) for n in range(5)])
    pipeline()

    assert len(alice.feed(limit=1000)["events"]) == 3


def test_an_unknown_hash_is_not_found(alice):
    response = alice.api.get("/api/v1/hashes/999/")

    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def cause_of(event: dict[str, Any], reader: Actor) -> str:
    """What a receiver does to get an event's cause: take `cause.statement`, or else find the
    statement among `hash.statements` by the `iss` and `jti` of its signed payload; then verify it
    against the published keys."""
    cause = event["cause"]
    candidates = [cause["statement"]] if "statement" in cause else event["hash"]["statements"]
    found = [(token, parsed) for token, parsed in ((token, jws.parse(token)) for token in candidates)
             if (parsed.payload["iss"], parsed.payload["jti"]) == (cause["member"], cause["jti"])]
    assert len(found) == 1
    token, parsed = found[0]
    keys = {key["kid"]: key for key in reader.api.get("/api/v1/keys/").json()["keys"]}
    assert keys[parsed.kid]["member"] == cause["member"]
    assert jws.verify_signature(parsed, load_public_jwk(keys[parsed.kid]))
    assert parsed.payload["kind"] == cause["kind"]
    return token


def test_an_added_hash_names_its_cause_without_repeating_the_statement(alice, bob, pipeline):
    statement = alice.statement([md5(7)], jti="a1")
    alice.submit(statement)
    pipeline()

    event = bob.feed()["events"][0]

    assert event["type"] == "hash.added"
    assert event["cause"] == {"member": "alice", "kind": "hash", "jti": "a1"}
    assert cause_of(event, bob) == statement
    assert json.dumps(event).count(statement) == 1


def test_a_corroboration_names_its_cause_among_the_hash_statements(alice, bob, charlie, pipeline):
    alice.submit(alice.statement([md5(7)], jti="same"))
    pipeline()
    bobs = bob.statement([md5(7)], jti="same")  # a jti is unique per member only
    bob.submit(bobs)
    pipeline()

    event = charlie.feed()["events"][-1]

    assert event["type"] == "hash.updated" and len(event["hash"]["statements"]) == 2
    assert event["cause"] == {"member": "bob", "kind": "hash", "jti": "same"}
    assert cause_of(event, charlie) == bobs
    assert json.dumps(event).count(bobs) == 1


def test_a_retraction_comes_with_its_own_statement(alice, bob, charlie, pipeline):
    alice.submit(alice.statement([md5(7)], jti="a1"))
    bob.submit(bob.statement([md5(7)], jti="b1"))
    pipeline()
    alice_retracts, bob_retracts = alice.retraction("a1", jti="ra"), bob.retraction("b1", jti="rb")
    alice.submit(alice_retracts)
    pipeline()
    bob.submit(bob_retracts)
    pipeline()

    updated, retracted = charlie.feed()["events"][-2:]

    assert updated["type"] == "hash.updated" and len(updated["hash"]["statements"]) == 1
    assert updated["cause"] == {"member": "alice", "kind": "retract", "jti": "ra", "statement": alice_retracts}
    assert retracted["type"] == "hash.retracted" and retracted["hash"]["statements"] == []
    assert retracted["cause"] == {"member": "bob", "kind": "retract", "jti": "rb", "statement": bob_retracts}
    assert cause_of(retracted, charlie) == bob_retracts


def test_a_merge_caused_on_another_hash_carries_that_statement(alice, bob, charlie, pipeline):
    left, right = BASE_PDQ, flip(BASE_PDQ, range(40))  # 40 bits apart: two families
    charlie.submit(charlie.statement([pdq_value(left)]), charlie.statement([pdq_value(right)]))
    pipeline()
    bridge = alice.statement([pdq_value(flip(BASE_PDQ, range(20)))], jti="bridge")
    alice.submit(bridge)
    pipeline()

    for reader in (bob, charlie):
        merged = reader.feed()["events"][-1]
        assert merged["type"] == "hash.updated" and "previous_cluster" in merged["hash"]
        assert merged["cause"] == {"member": "alice", "kind": "hash", "jti": "bridge", "statement": bridge}
        assert cause_of(merged, reader) == bridge


def test_a_group_statement_never_bridges_consortium_families(alice, bob, charlie, trusted_group, pipeline):
    """Non-interference: charlie, outside the group, sees exactly what it would without the group's
    statement. Group members see the group's hash linked to both consortium hashes."""
    left, right = BASE_PDQ, flip(BASE_PDQ, range(40))
    charlie.submit(charlie.statement([pdq_value(left)]), charlie.statement([pdq_value(right)]))
    pipeline()
    before = charlie.feed()["events"]
    alice.submit(alice.statement([pdq_value(flip(BASE_PDQ, range(20)))], share="trusted", jti="bridge"))
    pipeline()

    assert charlie.feed()["events"] == before
    clusters = {e["hash"]["id"]: e["hash"]["cluster"] for e in before}
    seen_by_bob = bob.feed()["events"]
    assert [e["type"] for e in seen_by_bob] == ["hash.added"] * 3
    bridge = seen_by_bob[-1]["hash"]
    assert sorted(link["hash"] for link in bridge["links"]) == sorted(clusters)
    assert bridge["cluster"] not in clusters.values() and len(set(clusters.values())) == 2


def test_a_feed_page_over_the_byte_cap_still_holds_one_event_and_paging_skips_no_seq(settings, alice, bob, pipeline):
    """With FEED_MAX_BYTES smaller than any event, every page holds exactly one event (never none,
    which would leave a reader stuck behind it for ever) and next_after walks every seq in order."""
    alice.submit(*[alice.statement([md5(n)]) for n in range(5)])
    pipeline()
    settings.FEED_MAX_BYTES = 1

    seen, after = [], 0
    for _ in range(10):
        page = bob.feed(after=after)
        assert len(page["events"]) == 1
        seen += [e["seq"] for e in page["events"]]
        assert page["next_after"] > after or not page["events"]
        after = page["next_after"]
        if not page["has_more"]:
            break
    assert seen == list(range(1, 6))
