"""At verification a hash statement is rejected whole with `benign_match` when one of its signals is
an exact value on the suppression list (md5, sha256, pdq, a vPDQ by its value digest) or a PDQ within
BENIGN_DISTANCE bits of a listed PDQ; nothing of it is published. Inactive entries are ignored."""

from __future__ import annotations

import pytest

from hashes.models import Event, Hash, Statement
from hashes.signals.parse import vpdq_digest
from suppression.services import benign_entries_set_active
from suppression.models import BenignEntry
from tests.factories import BASE_PDQ, flip, md5, pdq_value, random_pdq, sha256, vpdq


def verified(actor, pipeline, *signals) -> Statement:
    body = actor.submit(actor.statement(list(signals)))
    pipeline()
    return Statement.objects.get(id=body["accepted"][0]["id"])


def assert_benign_match(statement: Statement) -> None:
    assert (statement.state, statement.rejection_code) == ("rejected", "benign_match"), statement.rejection_message
    assert not Hash.objects.exists() and not Event.objects.exists()


VIDEO = vpdq(*(int(random_pdq(n)["value"], 16) for n in range(3)))
DIGEST = vpdq_digest([frame["pdq"] for frame in VIDEO["frames"]])


@pytest.mark.parametrize("entry, signal", [
    (("md5", md5(7)["value"]), md5(7)),
    (("sha256", sha256(7)["value"]), sha256(7)),
    (("pdq", BASE_PDQ), pdq_value(BASE_PDQ)),
    (("vpdq", DIGEST), VIDEO),
], ids=["md5", "sha256", "pdq", "vpdq"])
def test_an_exactly_listed_value_is_rejected(alice, pipeline, listing, entry, signal):
    listing(entry)

    assert_benign_match(verified(alice, pipeline, signal))


def test_a_pdq_at_exactly_benign_distance_is_rejected_and_one_bit_further_is_accepted(alice, pipeline, listing,
                                                                                   settings):
    listing(("pdq", BASE_PDQ))
    at = verified(alice, pipeline, pdq_value(flip(BASE_PDQ, range(settings.BENIGN_DISTANCE))))
    beyond = verified(alice, pipeline, pdq_value(flip(BASE_PDQ, range(settings.BENIGN_DISTANCE + 1))))

    assert settings.BENIGN_DISTANCE == 8  # the documented default
    assert (at.state, at.rejection_code) == ("rejected", "benign_match")
    assert beyond.state == "published"


def test_the_distance_comes_from_the_setting(alice, pipeline, listing, settings):
    settings.BENIGN_DISTANCE = 2
    listing(("pdq", BASE_PDQ))

    assert verified(alice, pipeline, pdq_value(flip(BASE_PDQ, range(2)))).rejection_code == "benign_match"
    assert verified(alice, pipeline, pdq_value(flip(BASE_PDQ, range(3)))).state == "published"


def test_one_benign_signal_rejects_the_whole_statement(alice, pipeline, listing):
    listing(("md5", md5(7)["value"]))

    statement = verified(alice, pipeline, pdq_value(BASE_PDQ), sha256(1), md5(7))

    assert_benign_match(statement)
    assert "signals[2]" in statement.rejection_message


def test_a_value_listed_for_another_type_or_a_vpdq_frame_is_not_a_match(alice, pipeline, listing):
    listing(("sha256", BASE_PDQ), ("pdq", VIDEO["frames"][0]["pdq"]))

    assert verified(alice, pipeline, pdq_value(BASE_PDQ)).state == "published"
    assert verified(alice, pipeline, VIDEO).state == "published"


def test_an_inactive_entry_is_ignored(alice, pipeline, listing):
    listing(("md5", md5(7)["value"]), ("pdq", BASE_PDQ))
    benign_entries_set_active(entry_ids=BenignEntry.objects.values_list("pk", flat=True), active=False)

    assert verified(alice, pipeline, md5(7), pdq_value(flip(BASE_PDQ, range(3)))).state == "published"


def test_a_malformed_statement_keeps_its_own_code(alice, pipeline, listing):
    listing(("md5", md5(7)["value"]))

    statement = verified(alice, pipeline, md5(7), {"type": "pdq", "value": BASE_PDQ, "quality": 10})

    assert statement.rejection_code == "quality_too_low"


def test_feedback_and_retractions_of_listed_values_are_not_refused(alice, bob, pipeline, listing):
    published = verified(alice, pipeline, md5(7))
    listing(("md5", md5(7)["value"]))

    bob.submit(bob.feedback(md5(7), "disagree", reasons=["benign_common_image"]))
    alice.submit(alice.retraction(published.jti))
    pipeline()

    assert set(Statement.objects.exclude(pk=published.pk).values_list("state", flat=True)) == {"published"}


def test_a_statement_verified_before_its_entry_was_listed_is_refused_when_published(alice, bob):
    """The race the barrier and the publish-time check close: verified, then listed, then published."""
    from hashes.models import Hash, Statement
    from hashes.services import publishing, verification
    from suppression.services import benign_entries_add
    from suppression.entries import EntryRow
    from tests.factories import md5 as md5_signal

    alice.submit(alice.statement([md5_signal(42)]), alice.statement([md5_signal(43)]))
    verification.statements_verify(ids=list(Statement.objects.values_list("id", flat=True)))
    benign_entries_add(entries=[EntryRow(signal_type="md5", value=md5_signal(42)["value"], reason="a test card")])
    publishing.publish_verified(batch_size=100)
    states = dict(Statement.objects.values_list("signals__0__value", "rejection_code"))
    assert states == {md5_signal(42)["value"]: "benign_match", md5_signal(43)["value"]: ""}
    assert list(Hash.objects.values_list("value", flat=True)) == [md5_signal(43)["value"]]
