"""Known-benign entries as values, and the check of signals against a list of them (pure, no Django).

An entry is a signal type and a value: lower-case hex, a vPDQ video by its value digest (the SHA-256 of
its frame hashes, as hashes.signals.parse computes it). A signal is covered by a list when its value is
listed for its type, or, for a PDQ, when it is within `distance` bits of a listed PDQ."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hashes.signals.pdq import ROW_DTYPE, ROW_WORDS, hexes_to_rows

HEX_LENGTHS = {"pdq": 64, "vpdq": 64, "md5": 32, "sha256": 64}
ENTRY_TYPES = tuple(HEX_LENGTHS)
MAX_REASON_CHARS = 2000
# Bounds a block of (signals x PDQ entries) first-word XORs to 8 MB however long the list.
_PAIRS_PER_BLOCK = 1 << 20
_HEX = re.compile(r"[0-9a-f]+")


class EntryError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class EntryRow:
    """One entry as an administrator gives it, checked and normalised."""

    signal_type: str
    value: str
    reason: str

    @property
    def key(self) -> tuple[str, str]:
        return self.signal_type, self.value


def entry_row(signal_type: object, value: object, reason: object) -> EntryRow:
    """Check and normalise one entry; raises EntryError with the first problem's code."""
    if not isinstance(signal_type, str) or signal_type.strip().lower() not in HEX_LENGTHS:
        raise EntryError("type_invalid", f"type must be one of {', '.join(ENTRY_TYPES)}.")
    signal_type = signal_type.strip().lower()
    length = HEX_LENGTHS[signal_type]
    value = value.strip().lower() if isinstance(value, str) else value
    if not isinstance(value, str) or len(value) != length or not _HEX.fullmatch(value):
        what = "the video's value digest, " if signal_type == "vpdq" else ""
        raise EntryError("value_invalid", f"a {signal_type} value is {what}{length} hexadecimal characters.")
    reason = reason.strip() if isinstance(reason, str) else ""
    if not reason:
        raise EntryError("reason_missing", "Every entry says why it is benign (reason).")
    if len(reason) > MAX_REASON_CHARS:
        raise EntryError("reason_too_long", f"reason is at most {MAX_REASON_CHARS} characters.")
    return EntryRow(signal_type, value, reason)


@dataclass(frozen=True)
class BenignList:
    """Active entries, loaded once and asked about many signals: exact values by set lookup, PDQs by
    Hamming distance to every listed PDQ, vectorised."""

    exact: frozenset[tuple[str, str]]
    pdq_words: np.ndarray  # (4, n) uint64: word w of every listed PDQ is one contiguous row
    distance: int

    @classmethod
    def of(cls, entries: Sequence[tuple[str, str]], *, distance: int) -> BenignList:
        pdqs = [value for signal_type, value in entries if signal_type == "pdq"]
        return cls(frozenset(entries), np.ascontiguousarray(hexes_to_rows(pdqs).T), distance)

    @classmethod
    def empty(cls) -> BenignList:
        return cls(frozenset(), np.empty((ROW_WORDS, 0), dtype=ROW_DTYPE), 0)

    def __bool__(self) -> bool:
        return bool(self.exact)

    def covered(self, signals: Sequence[tuple[str, str]]) -> list[bool]:
        """For each (type, value), whether an entry covers it."""
        hits = [key in self.exact for key in signals]
        near = [n for n, (signal_type, _) in enumerate(signals) if signal_type == "pdq" and not hits[n]]
        if near and self.pdq_words.shape[1]:
            rows = hexes_to_rows([signals[n][1] for n in near])
            for n, hit in zip(near, self.near_rows(rows).tolist()):
                hits[n] = hit
        return hits

    def near_rows(self, rows: np.ndarray) -> np.ndarray:
        """Whether each of `rows` ((m, 4) uint64) is within `distance` bits of a listed PDQ.

        O(m x n) XORs and popcounts of the first word (the lower bound of every pair's distance), in
        blocks of about a million pairs; the other three words only for the pairs that bound lets
        through, which for unrelated hashes at the default distance is next to none."""
        listed = self.pdq_words
        found = np.zeros(len(rows), dtype=bool)
        block = max(1, _PAIRS_PER_BLOCK // max(1, listed.shape[1]))
        for start in range(0, len(rows), block):
            part = rows[start:start + block]
            first = np.bitwise_count(part[:, 0:1] ^ listed[0][np.newaxis, :])
            queries, entries = np.nonzero(first <= self.distance)
            distances = first[queries, entries].astype(np.int64)
            for word in range(1, ROW_WORDS):
                distances += np.bitwise_count(part[queries, word] ^ listed[word][entries])
                within = distances <= self.distance
                queries, entries, distances = queries[within], entries[within], distances[within]
            found[start + queries] = True
        return found

    def first_covered(self, signals: Sequence[tuple[str, str]]) -> int | None:
        """The position of the first covered signal, or None."""
        return next((n for n, hit in enumerate(self.covered(signals)) if hit), None)
