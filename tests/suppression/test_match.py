"""Match never returns a hash the suppression list covers (the same value, or a PDQ within
BENIGN_DISTANCE of a listed PDQ), to any member; hashes it does not cover are returned as before, and
a deactivated entry stops hiding its hashes."""

from __future__ import annotations

from hashes.models import Hash
from hashes.signals.parse import vpdq_digest
from suppression.models import BenignEntry
from suppression.services import benign_entries_set_active
from tests.factories import BASE_PDQ, flip, md5, pdq_value, random_pdq, sha256, vpdq


def matched(actor, *signals) -> list[list[str]]:
    """For each query, the values (or vPDQ digests) of the hashes matched, nearest first."""
    response = actor.api.post("/api/v1/match/", {"signals": list(signals)}, format="json")
    assert response.status_code == 200, response.content
    return [[Hash.objects.get(pk=m["hash"]["id"]).value for m in result["matches"]]
            for result in response.json()["results"]]


NEAR = flip(BASE_PDQ, range(8))
FAR = flip(BASE_PDQ, range(100, 109))  # 9 bits from BASE_PDQ, 17 from NEAR: a hash of its own
VIDEO = vpdq(*(int(random_pdq(n)["value"], 16) for n in range(3)))
DIGEST = vpdq_digest([frame["pdq"] for frame in VIDEO["frames"]])


def test_hashes_covered_by_an_entry_are_never_matched_and_the_others_are(alice, bob, homeoffice, trusted_group,
                                                                        pipeline, listing):
    alice.submit(alice.statement([pdq_value(NEAR)]), alice.statement([pdq_value(FAR)]),
                 alice.statement([md5(7)]), alice.statement([sha256(7)], share="trusted"), alice.statement([VIDEO]))
    pipeline()
    assert matched(bob, pdq_value(BASE_PDQ), md5(7), sha256(7), VIDEO) == [[NEAR, FAR], [md5(7)["value"]],
                                                                          [sha256(7)["value"]], [DIGEST]]

    listing(("pdq", BASE_PDQ), ("md5", md5(7)["value"]), ("sha256", sha256(7)["value"]), ("vpdq", DIGEST))

    for reader in (alice, bob, homeoffice):
        assert matched(reader, pdq_value(BASE_PDQ), pdq_value(NEAR), md5(7), sha256(7), VIDEO) == [
            [FAR], [FAR], [], [], []]


def test_a_deactivated_entry_no_longer_hides_its_hashes(alice, bob, pipeline, listing):
    alice.submit(alice.statement([md5(7)]))
    pipeline()
    listing(("md5", md5(7)["value"]))
    assert matched(bob, md5(7)) == [[]]

    benign_entries_set_active(entry_ids=BenignEntry.objects.values_list("pk", flat=True), active=False)

    assert matched(bob, md5(7)) == [[md5(7)["value"]]]

