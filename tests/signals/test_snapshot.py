from __future__ import annotations

import numpy as np
import pytest

from hashes.signals import snapshot
from hashes.signals.index import PdqIndex
from hashes.signals.pdq import hamming_distances
from tests.signals.test_index import _clustered_rows, _flip, _queries, _random_rows


def _mapped(tmp_path, index: PdqIndex, name: str = "pdq") -> PdqIndex:
    path = tmp_path / "index.snap"
    snapshot.write(path, {name: index.freeze().arrays()}, {"seq": 1})
    found = snapshot.open_snapshot(path)
    return PdqIndex.from_arrays(*found.indexes[name], auto_merge=False)


def _truth(rows, ids, live, query, radius):
    distances = hamming_distances(rows, query)
    hits = [(int(d), int(i)) for d, i, alive in zip(distances, ids, live) if alive and d <= radius]
    return sorted(hits)


def _found(index, query, radius):
    matches = index.search(query, radius)
    return sorted(zip(matches.distances.tolist(), matches.ids.tolist()))


def test_a_mapped_snapshot_with_a_delta_answers_exactly_like_brute_force(tmp_path):
    rng = np.random.default_rng(21)
    rows = _clustered_rows(rng, 20_000)
    ids = np.arange(len(rows)) + 5
    mapped = _mapped(tmp_path, PdqIndex.build(ids, rows))
    assert mapped.shared
    added = _random_rows(rng, 300)
    added_ids = np.arange(300) + 100_000
    mapped.add_many(added_ids, added)
    removed = {int(i) for i in rng.choice(ids, 400, replace=False)} | {100_007}
    for id_ in removed:
        assert mapped.remove(id_) == 1
    assert mapped.remove(100_007) == 0  # already gone

    all_rows = np.concatenate([rows, added])
    all_ids = np.concatenate([ids, added_ids])
    live = [int(i) not in removed for i in all_ids]
    queries = _queries(rng, all_rows, 60)
    for radius in (0, 16, 31, 45):
        assert [_found(mapped, q, radius) for q in queries] == [
            _truth(all_rows, all_ids, live, q, radius) for q in queries]
        batch = mapped.search_many(queries, radius, per_query=2)
        assert [sorted(zip(m.distances.tolist(), m.ids.tolist())) for m in batch] == [
            _truth(all_rows, all_ids, live, q, radius) for q in queries]
    assert len(mapped) == len(all_rows) - len(removed)


def test_an_id_removed_from_the_snapshot_and_added_again_matches_only_by_its_new_row(tmp_path):
    rng = np.random.default_rng(22)
    rows = _random_rows(rng, 1_000)
    mapped = _mapped(tmp_path, PdqIndex.build(np.arange(1_000), rows))
    mapped.remove(7)
    mapped.add(7, _flip(rng, rows[7], 3))

    assert mapped.search(rows[7], 0).ids.tolist() == []
    assert mapped.search(rows[7], 3).ids.tolist() == [7]
    mapped.remove(7)
    assert mapped.search(rows[7], 3).ids.tolist() == []


def test_freezing_a_mapped_index_folds_its_delta_and_removals_into_a_new_snapshot(tmp_path):
    rng = np.random.default_rng(23)
    rows = _random_rows(rng, 2_000)
    mapped = _mapped(tmp_path, PdqIndex.build(np.arange(2_000), rows))
    extra = _random_rows(rng, 10)
    mapped.add_many(np.arange(10) + 5_000, extra)
    mapped.remove(3)
    mapped.remove(5_001)

    again = _mapped(tmp_path / "next", mapped)
    assert again.delta_size == 0
    assert len(again) == 2_000 + 10 - 2
    assert again.search(rows[3], 0).ids.tolist() == []
    assert again.search(extra[1], 0).ids.tolist() == []
    assert again.search(extra[2], 0).ids.tolist() == [5_002]
    assert again.search(rows[4], 0).ids.tolist() == [4]


def test_the_file_is_renamed_into_place_and_an_old_mapping_stays_valid(tmp_path):
    rng = np.random.default_rng(24)
    rows = _random_rows(rng, 500)
    path = tmp_path / "index.snap"
    snapshot.write(path, {"pdq": PdqIndex.build(np.arange(500), rows).freeze().arrays()}, {"seq": 1})
    old = PdqIndex.from_arrays(*snapshot.open_snapshot(path).indexes["pdq"])
    before = snapshot.file_identity(path)
    snapshot.write(path, {"pdq": PdqIndex.build(np.arange(500) + 1_000, rows).freeze().arrays()}, {"seq": 2})

    assert snapshot.file_identity(path) != before
    assert old.search(rows[9], 0).ids.tolist() == [9]
    assert snapshot.open_snapshot(path).meta == {"seq": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["index.snap"]  # no temporary file left behind


def _damaged(path, how):
    data = bytearray(path.read_bytes())
    if how == "truncated":
        del data[len(data) // 2 :]
    elif how == "extended":
        data += b"\0" * 10
    elif how == "flipped data":
        data[-100] ^= 0x01
    elif how == "flipped header":
        data[40] ^= 0x01
    elif how == "other version":
        data[8] += 1
    elif how == "empty":
        data = bytearray()
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "how", ["truncated", "extended", "flipped data", "flipped header", "other version", "empty"]
)
def test_a_damaged_snapshot_is_refused_with_a_reason(tmp_path, how):
    rng = np.random.default_rng(25)
    path = tmp_path / "index.snap"
    snapshot.write(path, {"pdq": PdqIndex.build(np.arange(100), _random_rows(rng, 100)).freeze().arrays()}, {})
    _damaged(path, how)

    with pytest.raises(snapshot.SnapshotError):
        snapshot.open_snapshot(path)


def test_arrays_that_do_not_fit_together_are_refused(tmp_path):
    rng = np.random.default_rng(26)
    arrays, base = PdqIndex.build(np.arange(100), _random_rows(rng, 100)).freeze().arrays()
    with pytest.raises(ValueError):
        PdqIndex.from_arrays({**arrays, "ids": arrays["ids"][:50]}, base)
