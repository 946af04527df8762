import pytest

from tests.factories import md5


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
