"""The suppression list as values (no database): entries are checked and normalised, and a list
covers exact values of each type and PDQs up to BENIGN_DISTANCE bits away, not one bit more."""

from __future__ import annotations

import pytest

from hashes.signals.parse import vpdq_digest
from suppression import entries as entries_module
from suppression.entries import BenignList, EntryError, entry_row
from tests.factories import BASE_PDQ, flip, random_pdq


@pytest.mark.parametrize("signal_type, value, reason, code", [
    ("phash", "0" * 32, "logo", "type_invalid"),
    (None, "0" * 32, "logo", "type_invalid"),
    ("md5", "0" * 31, "logo", "value_invalid"),
    ("md5", "0" * 64, "logo", "value_invalid"),
    ("sha256", "g" * 64, "logo", "value_invalid"),
    ("pdq", "0" * 63 + " x", "logo", "value_invalid"),
    ("vpdq", 42, "logo", "value_invalid"),
    ("md5", "0" * 32, "   ", "reason_missing"),
    ("md5", "0" * 32, None, "reason_missing"),
    ("md5", "0" * 32, "x" * 2001, "reason_too_long"),
])
def test_a_bad_entry_is_refused_with_its_code(signal_type, value, reason, code):
    with pytest.raises(EntryError) as refused:
        entry_row(signal_type, value, reason)
    assert refused.value.code == code


def test_an_entry_is_normalised_to_lower_case_hex_and_a_trimmed_reason():
    entry = entry_row(" PDQ ", BASE_PDQ.upper(), "  blank frame\n")

    assert (entry.signal_type, entry.value, entry.reason) == ("pdq", BASE_PDQ, "blank frame")


def test_exact_values_are_covered_only_for_their_own_type():
    digest = vpdq_digest([BASE_PDQ])
    listed = BenignList.of([("md5", "a" * 32), ("sha256", "b" * 64), ("vpdq", digest)], distance=8)

    assert listed.covered([("md5", "a" * 32), ("sha256", "b" * 64), ("vpdq", digest), ("md5", "c" * 32),
                           ("sha256", digest), ("pdq", "b" * 64)]) == [True, True, True, False, False, False]


def together(bits: int) -> list[int]:
    return list(range(bits))


def spread(bits: int) -> list[int]:
    """Over all four 64-bit words."""
    return [n * 256 // bits for n in range(bits)]


@pytest.mark.parametrize("where", [together, spread])
@pytest.mark.parametrize("distance", [0, 8, 31])
def test_a_pdq_is_covered_up_to_the_distance_and_not_one_bit_further(distance, where):
    listed = BenignList.of([("pdq", BASE_PDQ), ("pdq", flip(BASE_PDQ, range(100, 200)))], distance=distance)

    at, beyond = flip(BASE_PDQ, where(distance)), flip(BASE_PDQ, where(distance + 1))

    assert listed.covered([("pdq", at), ("pdq", beyond)]) == [True, False]
    assert listed.first_covered([("md5", "0" * 32), ("pdq", beyond), ("pdq", at)]) == 2
    assert listed.first_covered([("pdq", beyond)]) is None


def test_many_signals_against_many_entries_are_checked_in_blocks_with_the_same_answer(monkeypatch):
    monkeypatch.setattr(entries_module, "_PAIRS_PER_BLOCK", 64)  # 64 // 50 entries: one signal a block
    listed = BenignList.of([("pdq", random_pdq(n)["value"]) for n in range(50)], distance=8)
    queries = [("pdq", flip(random_pdq(n % 50)["value"], range(n % 12))) for n in range(300)]

    assert listed.covered(queries) == [n % 12 <= 8 for n in range(300)]


def test_an_empty_list_covers_nothing():
    assert not BenignList.empty()
    assert BenignList.empty().covered([("pdq", BASE_PDQ), ("md5", "0" * 32)]) == [False, False]
