"""A verification task publishes the hash statements it verified in its own transaction when the
feed lock is free: each row is written once more (published), never verified and then published.
Nothing of the pipeline's guarantees changes: the feed stays in order and gap-free, a retraction
still waits for its target, a statement the suppression list covers is still refused under the
feed lock, and a failure of the publishing part costs neither the verification nor any statement."""

from __future__ import annotations

import pytest
from billiard.exceptions import SoftTimeLimitExceeded

from consortium_client import jws
from hashes import tasks
from hashes.models import Event, Statement
from hashes.services import publishing, verification
from suppression.services import benign_entries_add
from suppression.entries import BenignList, entry_row
from tests.factories import md5


def ids_of(body) -> list[str]:
    return [a["id"] for a in body["accepted"]]


def test_a_verified_batch_is_published_in_its_verifications_transaction_after_what_was_waiting(alice, bob):
    waiting = ids_of(alice.submit(alice.statement([md5(1)])))
    verification.statements_verify(ids=waiting)  # verified earlier, not published yet
    fresh = ids_of(alice.submit(*[alice.statement([md5(n)]) for n in range(2, 5)]))

    assert verification.statements_verify(ids=fresh, publish=True) == 3

    assert set(Statement.objects.values_list("state", flat=True)) == {"published"}
    events = bob.feed()["events"]
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert [e["hash"]["value"] for e in events] == [md5(n)["value"] for n in range(1, 5)]  # in receipt order
    for statement in Statement.objects.filter(id__in=fresh):
        # What verification found and what publishing decided, written together.
        assert statement.verified_at is not None and statement.published_at is not None
        assert statement.key_id == alice.key.pk and statement.issued_at is not None
        assert statement.signals == [md5(fresh.index(str(statement.id)) + 2)]
        assert statement.content_type == "photo"


def test_a_retraction_verified_with_its_target_waits_for_the_target_to_be_published(alice, bob):
    target = alice.statement([md5(1)])
    body = alice.submit(target)
    retraction = alice.submit(alice.retraction(jws.parse(target).payload["jti"]))
    verification.statements_verify(ids=ids_of(body) + ids_of(retraction), publish=True)

    assert Statement.objects.get(id=ids_of(body)[0]).state == "published"
    assert Statement.objects.get(id=ids_of(retraction)[0]).state == "verified"  # its target was not yet
    publishing.publish_verified(batch_size=10)
    assert [e["type"] for e in bob.feed()["events"]] == ["hash.added", "hash.retracted"]


def test_a_statement_listed_after_its_verification_read_the_list_is_refused_under_the_feed_lock(
        alice, bob, monkeypatch):
    body = alice.submit(alice.statement([md5(1)]), alice.statement([md5(2)]))
    benign_entries_add(entries=[entry_row("md5", md5(1)["value"], "known benign")], actor=None)
    # As if the entry had been added after verification read the list.
    monkeypatch.setattr(verification, "benign_list", BenignList.empty)

    verification.statements_verify(ids=ids_of(body), publish=True)

    listed, other = (Statement.objects.get(id=i) for i in ids_of(body))
    assert (listed.state, listed.rejection_code) == ("rejected", "benign_match")
    assert listed.verified_at is not None and listed.key_id == alice.key.pk
    assert other.state == "published"
    assert [e["hash"]["value"] for e in bob.feed()["events"]] == [md5(2)["value"]]


def test_when_publishing_fails_the_batch_is_verified_all_the_same_and_published_later(alice, bob, monkeypatch):
    ids = ids_of(alice.submit(*[alice.statement([md5(n)]) for n in range(3)]))

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in publishing")

    monkeypatch.setattr(publishing, "publish_statements", broken)
    assert verification.statements_verify(ids=ids, publish=True) == 3

    assert set(Statement.objects.values_list("state", flat=True)) == {"verified"}
    assert not Event.objects.exists()
    monkeypatch.undo()
    publishing.publish_verified(batch_size=10)
    assert [e["seq"] for e in bob.feed()["events"]] == [1, 2, 3]


def test_a_time_limit_while_publishing_leaves_the_batch_received_for_the_sweep(alice, bob, monkeypatch):
    ids = ids_of(alice.submit(*[alice.statement([md5(n)]) for n in range(3)]))

    def stopped(*args, **kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(publishing.Batch, "record", stopped)
    with pytest.raises(SoftTimeLimitExceeded):
        tasks.verify_statements(ids)

    assert set(Statement.objects.values_list("state", flat=True)) == {"received"}  # nothing half-written
    assert not Event.objects.exists()
    monkeypatch.undo()
    tasks.verify_statements(ids)
    assert [e["seq"] for e in bob.feed()["events"]] == [1, 2, 3]
