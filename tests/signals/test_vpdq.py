from __future__ import annotations

import itertools

import numpy as np
import pytest

from hashes.matching import frames_shared
from hashes.signals import vpdq
from hashes.signals.index import PdqIndex
from hashes.signals.pdq import rows_to_hexes
from tests.signals.vectors import VIDEOS, our_signals, reference_frames, requires_vectors, requires_video

CHAIRS = [v for v in VIDEOS if v.startswith("chair")]
OTHERS = [v for v in VIDEOS if not v.startswith("chair")]


def _frames(hexes, quality=100):
    return [{"i": i, "t": i / 30, "pdq": h, "q": quality} for i, h in enumerate(hexes)]


def _flip(hex_value, bits):
    value = int(hex_value, 16)
    for bit in bits:
        value ^= 1 << bit
    return format(value, "064x")


@pytest.fixture
def hashes():
    rng = np.random.default_rng(7)
    return rows_to_hexes(rng.integers(0, 2**64, size=(6, 4), dtype=np.uint64))


def test_a_clip_matches_all_of_itself_and_part_of_the_longer_video(hashes):
    video = _frames(hashes)
    clip = _frames(hashes[:3])

    assert vpdq.compare(clip, video) == (100.0, 50.0)
    assert vpdq.compare(video, clip) == (50.0, 100.0)


def test_frame_distance_is_inclusive(hashes):
    at_31 = _frames([_flip(hashes[0], range(31))])
    at_32 = _frames([_flip(hashes[0], range(32))])
    stored = _frames(hashes[:1])

    assert vpdq.compare(at_31, stored) == (100.0, 100.0)
    assert vpdq.compare(at_32, stored) == (0.0, 0.0)
    assert vpdq.compare(at_32, stored, distance=32) == (100.0, 100.0)


def test_duplicate_frames_count_once_and_poor_frames_not_at_all(hashes):
    query = _frames([hashes[0]] * 5 + [hashes[1]]) + _frames(hashes[2:4], quality=49)
    stored = _frames(hashes[:1])

    assert vpdq.compare(query, stored) == (50.0, 100.0)
    assert vpdq.compare(query, stored, quality=40) == (25.0, 100.0)


def test_no_usable_frame_matches_nothing(hashes):
    assert vpdq.compare(_frames(hashes, quality=10), _frames(hashes)) == (0.0, 0.0)


def test_long_videos_are_compared_in_blocks(hashes, monkeypatch):
    monkeypatch.setattr(vpdq, "_PAIRS_PER_BLOCK", 2)
    query = _frames(hashes[:4])
    stored = _frames(hashes[2:])

    assert vpdq.compare(query, stored) == (50.0, 50.0)


def test_frames_shared_finds_the_videos_sharing_a_frame(hashes):
    index = PdqIndex()
    index.add(10, hashes[0])
    index.add(10, hashes[1])
    index.add(20, hashes[2])
    index.add(30, _flip(hashes[3], range(20)))

    found = frames_shared(index, vpdq.usable_rows(_frames([hashes[1], hashes[3], hashes[4]]), quality=50))

    assert found == {10: 1, 30: 1}


def _assert_family(frames_of):
    for a, b in itertools.permutations(CHAIRS, 2):
        assert min(vpdq.compare(frames_of(a), frames_of(b))) >= 80, (a, b)
    for chair, other in itertools.product(CHAIRS, OTHERS):
        assert max(vpdq.compare(frames_of(chair), frames_of(other))) < 80, (chair, other)
        assert max(vpdq.compare(frames_of(other), frames_of(chair))) < 80, (other, chair)


@requires_vectors
def test_reference_hashes_form_one_chair_family():
    _assert_family(reference_frames)


@requires_vectors
@requires_video
def test_our_video_hashes_form_one_chair_family():
    _assert_family(lambda video: our_signals(video)[0]["frames"])


@requires_vectors
@requires_video
@pytest.mark.parametrize("video", VIDEOS)
def test_our_hashes_match_the_reference_hashes_of_the_same_video(video):
    assert min(vpdq.compare(our_signals(video)[0]["frames"], reference_frames(video))) >= 95
