"""Where the shared reference vectors live, and the videos hashed once for the whole run."""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from consortium_client.media import hash_media, video_supported

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors"
VIDEOS = (
    "chair-orig-22-sd-bar",
    "chair-22-sd-sepia-bar",
    "chair-22-with-small-logo-bar",
    "doorknob-hd-no-bar",
    "pattern-sd-grey-bar",
)

requires_vectors = pytest.mark.skipif(
    not VECTORS.is_dir(), reason=f"the reference vectors are not at {VECTORS} (shared/ beside the repository)"
)
requires_video = pytest.mark.skipif(not video_supported(), reason="PyAV is not installed, so videos cannot be decoded")


def csv_rows(name: str) -> list[dict[str, str]]:
    with open(VECTORS / "pdq" / f"{name}.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def reference_frames(video: str) -> list[dict[str, Any]]:
    """vpdq's own output for a sample video: `frame_index,quality,pdq_hex,timestamp` lines."""
    frames = []
    for line in (VECTORS / "vpdq" / f"{video}.txt").read_text().split():
        index, quality, pdq, seconds = line.split(",")
        frames.append({"i": int(index), "t": float(seconds), "pdq": pdq, "q": int(quality)})
    return frames


@cache
def our_signals(video: str) -> tuple[dict[str, Any], ...]:
    # Decoding and hashing all five samples takes seconds; several tests share the result.
    return tuple(hash_media((VECTORS / "vpdq" / f"{video}.mp4").read_bytes()))
