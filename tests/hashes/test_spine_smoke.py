from conftest import md5


def test_a_submitted_statement_reaches_the_feed_with_its_submitter(alice, bob, pipeline):
    submitted = alice.submit(alice.statement([md5(7)], labels=["glorification"]))
    pipeline()

    events = bob.feed()["events"]

    assert [e["type"] for e in events] == ["hash.added"]
    assert events[0]["hash"]["value"] == f"{7:032x}"
    assert events[0]["hash"]["submitters"] == [{"member": "alice", "kind": "platform"}]
    assert events[0]["hash"]["labels"] == ["glorification"]
    assert alice.api.get(f"/api/v1/statements/{submitted['accepted'][0]['id']}/").json()["state"] == "published"
