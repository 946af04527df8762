"""vPDQ comparison: how much of two videos' frames match, as Meta's vpdq computes it.

A video is a bag of frame hashes; order and timestamps play no part. Frames under the quality bar
are ignored, identical frame hashes count once, and a frame matches when any frame of the other
video is within the distance. The result is the share of each side's frames that matched, so a
short clip cut from a long video matches 100 % of the clip and a small share of the video.

Distances are inclusive (<= 31 matches), as in python-threatexchange and the vpdq README; vpdq's
C++ brute-force tool compares with a strict < instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np

from hashes.signals.pdq import hexes_to_rows

DEFAULT_DISTANCE = 31
DEFAULT_QUALITY = 50
# Bounds the (query block x stored frames) distance matrix to about 32 MB however long the videos.
_PAIRS_PER_BLOCK = 1 << 20


class VpdqComparison(NamedTuple):
    query_match_percent: float
    stored_match_percent: float


def usable_rows(frames: Iterable[Mapping[str, Any]], *, quality: int = DEFAULT_QUALITY) -> np.ndarray:
    """The distinct frame hashes at or above `quality`, as (n, 4) uint64 rows, in first-seen order.

    `frames` are in the wire shape: {"i": index, "t": seconds, "pdq": hex, "q": quality}.
    """
    seen: set[str] = set()
    kept: list[str] = []
    for frame in frames:
        value = frame["pdq"].lower()
        if frame["q"] >= quality and value not in seen:
            seen.add(value)
            kept.append(value)
    return hexes_to_rows(kept)


def compare(
    query_frames: Iterable[Mapping[str, Any]],
    stored_frames: Iterable[Mapping[str, Any]],
    *,
    distance: int = DEFAULT_DISTANCE,
    quality: int = DEFAULT_QUALITY,
) -> VpdqComparison:
    """Percentages of the query's and the stored video's usable frames that match the other."""
    return compare_rows(
        usable_rows(query_frames, quality=quality), usable_rows(stored_frames, quality=quality), distance=distance
    )


def compare_rows(query: np.ndarray, stored: np.ndarray, *, distance: int = DEFAULT_DISTANCE) -> VpdqComparison:
    """`compare` for frames already filtered and deduplicated by `usable_rows`."""
    if len(query) == 0 or len(stored) == 0:
        # Nothing usable on one side: nothing can be said to match (vpdq answers 0 % too).
        return VpdqComparison(0.0, 0.0)
    query_matched = np.zeros(len(query), dtype=bool)
    stored_matched = np.zeros(len(stored), dtype=bool)
    block = max(1, _PAIRS_PER_BLOCK // len(stored))
    for start in range(0, len(query), block):
        part = query[start : start + block]
        near = np.bitwise_count(part[:, np.newaxis, :] ^ stored[np.newaxis, :, :]).sum(axis=2) <= distance
        query_matched[start : start + block] = near.any(axis=1)
        stored_matched |= near.any(axis=0)
    return VpdqComparison(
        100.0 * int(np.count_nonzero(query_matched)) / len(query),
        100.0 * int(np.count_nonzero(stored_matched)) / len(stored),
    )
