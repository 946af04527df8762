from __future__ import annotations

import threading

import numpy as np
import pytest

from hashes.signals.index import PdqIndex
from hashes.signals.pdq import hamming_distances, row_to_hex

N = 20_000
RADII = [0, 8, 15, 16, 31, 32, 45]


def _random_rows(rng, n):
    return rng.integers(0, 2**64, size=(n, 4), dtype=np.uint64)


def _flip(rng, row, bits):
    row = row.copy()
    for bit in rng.choice(256, size=bits, replace=False):
        row[bit >> 6] ^= np.uint64(1) << np.uint64(bit & 63)
    return row


def _clustered_rows(rng, n):
    """Variant families within a few bits of their centre, near-blank clumps, and a random rest."""
    rows = _random_rows(rng, n)
    centres = _random_rows(rng, 200)
    families = n // 2
    for i in range(families):
        rows[i] = _flip(rng, centres[i % len(centres)], int(rng.integers(0, 12)))
    blank = np.zeros(4, dtype=np.uint64)
    for i in range(families, families + n // 10):
        rows[i] = _flip(rng, blank, int(rng.integers(0, 6)))
    return rows


def _queries(rng, rows, count=150):
    near = [_flip(rng, rows[i], int(rng.integers(0, 30))) for i in rng.integers(0, len(rows), count)]
    return np.concatenate([np.array(near), _random_rows(rng, count // 3), np.zeros((1, 4), dtype=np.uint64)])


def _brute_force(rows, ids, query, radius):
    distances = hamming_distances(query, rows)
    hit = distances <= radius
    return sorted(zip(distances[hit].tolist(), ids[hit].tolist(), strict=True))


def _pairs(matches):
    return list(zip(matches.distances.tolist(), matches.ids.tolist(), strict=True))


@pytest.fixture(scope="module", params=["random", "clustered"])
def corpus(request):
    rng = np.random.default_rng(1 if request.param == "random" else 2)
    rows = _random_rows(rng, N) if request.param == "random" else _clustered_rows(rng, N)
    ids = rng.permutation(N).astype(np.int64) * 7 + 1_000
    return rows, ids, _queries(rng, rows), PdqIndex.build(ids, rows)


@pytest.mark.parametrize("radius", RADII)
def test_search_finds_exactly_what_brute_force_finds(corpus, radius):
    rows, ids, queries, index = corpus

    for query in queries:
        assert _pairs(index.search(query, radius)) == _brute_force(rows, ids, query, radius)


@pytest.mark.parametrize("radius", [8, 31, 40])
def test_batch_search_equals_single_search(corpus, radius):
    _, _, queries, index = corpus

    batch = index.search_many(queries, radius, per_query=4)

    assert [_pairs(m) for m in batch] == [_pairs(index.search(q, radius)) for q in queries]


@pytest.fixture(scope="module")
def clumped():
    rng = np.random.default_rng(3)
    rows = _clustered_rows(rng, N)
    ids = np.arange(N, dtype=np.int64)
    return rows, ids, PdqIndex.build(ids, rows)


def test_a_query_inside_a_clump_gets_every_member(clumped):
    rows, ids, index = clumped
    blank = np.zeros(4, dtype=np.uint64)

    matches = index.search(blank)

    assert _pairs(matches) == _brute_force(rows, ids, blank, 31)
    assert len(matches.ids) >= N // 10


def test_hex_queries_and_hex_hashes_work():
    rng = np.random.default_rng(4)
    rows = _random_rows(rng, 10)
    index = PdqIndex.build(list(range(10)), [row_to_hex(r) for r in rows])

    assert index.search(row_to_hex(rows[3]), 0).ids.tolist() == [3]


def test_an_added_hash_is_found_at_once_and_survives_merges():
    rng = np.random.default_rng(5)
    rows = _random_rows(rng, 1_000)
    index = PdqIndex.build(np.arange(1_000), rows, auto_merge=False)
    new = _random_rows(rng, 1)[0]

    index.add(5_000, new)

    assert _pairs(index.search(_flip(rng, new, 10))) == [(10, 5_000)]
    index.merge()
    assert _pairs(index.search(_flip(rng, new, 10))) == [(10, 5_000)]
    assert len(index) == 1_001


def test_removed_ids_stop_matching_wherever_their_rows_live():
    rng = np.random.default_rng(6)
    rows = _random_rows(rng, 1_000)
    index = PdqIndex.build(np.arange(1_000), rows, auto_merge=False)
    index.add(7_000, rows[1])  # a second id on the same hash, in the delta

    assert index.remove(1) == 1
    assert index.search(rows[1], 0).ids.tolist() == [7_000]
    assert index.remove(7_000) == 1
    assert index.search(rows[1], 0).ids.tolist() == []
    assert index.remove(123_456) == 0
    index.merge()
    assert index.search(rows[1], 0).ids.tolist() == []
    assert len(index) == 999


def test_remove_takes_every_row_of_an_id_such_as_a_videos_frames():
    rng = np.random.default_rng(7)
    frames = _random_rows(rng, 5)
    index = PdqIndex.build([42] * 5, frames)
    index.add(42, _random_rows(rng, 1)[0])

    assert index.search(frames[2], 0).ids.tolist() == [42]
    assert index.remove(42) == 6
    assert len(index) == 0


def test_a_full_delta_is_merged_in_the_background_without_losing_anything():
    rng = np.random.default_rng(8)
    rows = _random_rows(rng, 3_000)
    index = PdqIndex(delta_capacity=100)

    for i, row in enumerate(rows):
        index.add(i, row)
    index.wait_for_merge()
    index.merge()

    assert len(index) == 3_000
    assert all(index.search(rows[i], 0).ids.tolist() == [i] for i in range(0, 3_000, 97))
    assert index.nbytes < 3_000 * 96 + 9_000_000


def test_readers_stay_exact_while_a_merge_and_removals_run():
    rng = np.random.default_rng(9)
    rows = _random_rows(rng, 20_000)
    index = PdqIndex.build(np.arange(10_000), rows[:10_000], delta_capacity=50_000, auto_merge=False)
    for i in range(10_000, 20_000):
        index.add(i, rows[i])
    failures: list[int] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            for i in range(0, 20_000, 1_001):
                if index.search(rows[i], 0).ids.tolist() != [i]:
                    failures.append(i)

    reader = threading.Thread(target=read)
    reader.start()
    index.merge()
    index.remove(20_000 - 1)
    index.merge()
    stop.set()
    reader.join()

    assert failures == []
    assert index.search(rows[-1], 0).ids.tolist() == []
    assert len(index) == 19_999


def test_a_removal_during_a_merge_is_not_undone_by_it():
    rng = np.random.default_rng(10)
    rows = _random_rows(rng, 200_000)
    index = PdqIndex.build(np.arange(100_000), rows[:100_000], delta_capacity=200_000, auto_merge=False)
    for i in range(100_000, 110_000):
        index.add(i, rows[i])

    merging = threading.Thread(target=index.merge)
    merging.start()
    index.remove(5)
    index.remove(100_005)
    merging.join()

    assert index.search(rows[5], 0).ids.tolist() == []
    assert index.search(rows[100_005], 0).ids.tolist() == []


def test_ids_spanning_more_than_32_bits_are_kept_exactly():
    rng = np.random.default_rng(11)
    rows = _random_rows(rng, 3)
    ids = [-(2**40), 0, 2**62]
    index = PdqIndex.build(ids, rows)

    assert [index.search(r, 0).ids.tolist() for r in rows] == [[i] for i in ids]
    assert index.remove(2**62) == 1


def test_memory_stays_within_three_times_the_raw_hashes():
    rng = np.random.default_rng(13)
    n = 100_000
    index = PdqIndex.build(np.arange(n) + 10**9, _random_rows(rng, n), delta_capacity=1_000)
    constant = 16 * 65_537 * 8 + 1_000 * 40

    assert index.nbytes <= 96 * n + constant


@pytest.mark.parametrize("radius", [-1, 257])
def test_impossible_radii_are_refused(radius):
    with pytest.raises(ValueError):
        PdqIndex().search("0" * 64, radius)


def test_an_empty_index_matches_nothing():
    index = PdqIndex()

    assert index.search("0" * 64).ids.tolist() == []
    assert [m.ids.tolist() for m in index.search_many(["0" * 64, "f" * 64])] == [[], []]
