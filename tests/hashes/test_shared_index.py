"""The match index shared by a host's processes (hashes/matching.py): a snapshot file mapped
read-only plus each process's delta must answer exactly as a private index built afresh from the
database, through additions, retractions and snapshot rotations, and a damaged or foreign
snapshot is rebuilt rather than trusted."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from hashes.matching import MatchIndexes, index_ready, indexes, snapshot_path
from hashes.signals import snapshot
from hashes.signals.vpdq import usable_rows
from tests.factories import flip, pdq_value, vpdq

RADII = (0, 10, 31)


def _pdq(n: int) -> str:
    return hashlib.sha256(f"shared-{n}".encode()).hexdigest()


def _video(n: int) -> dict:
    frames = [int(_pdq(1_000 + n * 10 + k), 16) for k in range(4)]
    return vpdq(*frames)


@pytest.fixture
def settings_for_sharing(settings):
    settings.INDEX_REFRESH_SECONDS = 0
    settings.MATCH_DISTANCE = 0  # every submitted value is a hash of its own
    settings.DEDUPE_DISTANCE = 0
    return settings


def _publish(actor, pipeline, signals, jtis):
    actor.submit(*[actor.statement([s], jti=j, content_type="video" if s["type"] == "vpdq" else "photo")
                   for s, j in zip(signals, jtis)])
    pipeline()


def _queries():
    near = [flip(_pdq(n), range(n % 12)) for n in range(0, 60, 3)]
    return near + [_pdq(10_000)]


def _frame_queries():
    return [usable_rows(_video(n)["frames"], quality=50) for n in range(8)]


def _answers(match_indexes: MatchIndexes):
    found = match_indexes.fresh(max_age=0)
    return (
        [[found.pdq_within(q, r) for q in _queries()] for r in RADII],
        [found.frames_shared(rows) for rows in _frame_queries()],
    )


def _fresh_private_build(settings) -> MatchIndexes:
    """Indexes built afresh from the database in this process's memory, as before snapshots; keep
    INDEX_SHARED off while searching them, or they would start following the host's snapshot."""
    settings.INDEX_SHARED = False
    private = MatchIndexes()
    private.fresh()
    assert private.snapshot_identity is None and not private.pdq.shared
    return private


def _fresh_build_answers(settings):
    try:
        return _answers(_fresh_private_build(settings))
    finally:
        settings.INDEX_SHARED = True


def test_snapshot_and_delta_answer_exactly_as_a_fresh_build_through_adds_and_retractions(
        alice, pipeline, settings_for_sharing):
    settings = settings_for_sharing
    assert not index_ready()
    _publish(alice, pipeline, [pdq_value(_pdq(n)) for n in range(40)] + [_video(n) for n in range(4)],
             [f"p{n}" for n in range(40)] + [f"v{n}" for n in range(4)])
    first = _answers(indexes)
    assert index_ready() and indexes.pdq.shared and snapshot_path().exists()
    assert first == _fresh_build_answers(settings)

    # Retract some hashes that are in the snapshot, add some, and retract one of the new ones.
    alice.submit(*[alice.retraction(j) for j in ("p0", "p3", "p9", "v1")])
    _publish(alice, pipeline, [pdq_value(_pdq(n)) for n in range(40, 60)] + [_video(n) for n in range(4, 8)],
             [f"p{n}" for n in range(40, 60)] + [f"v{n}" for n in range(4, 8)])
    alice.submit(alice.retraction("p42"), alice.retraction("v5"))
    pipeline()

    after = _answers(indexes)
    assert indexes.pdq.delta_size > 0 and indexes.pdq.shared
    assert after == _fresh_build_answers(settings)
    assert after != first
    assert all(0 not in after[0][r][0].values() for r in range(len(RADII)))  # p0 (query 0) is retracted


# Committed data: the new snapshot is written by a thread, on a database connection of its own.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_delta_past_its_bound_is_folded_into_a_new_snapshot_that_other_processes_map(
        alice, pipeline, settings_for_sharing):
    settings = settings_for_sharing
    _publish(alice, pipeline, [pdq_value(_pdq(n)) for n in range(30)], [f"p{n}" for n in range(30)])
    indexes.fresh()
    before = snapshot.file_identity(snapshot_path())
    other_process = MatchIndexes()
    other_process.fresh()
    assert other_process.snapshot_identity == before

    alice.submit(*[alice.retraction(f"p{n}") for n in range(0, 30, 10)])
    _publish(alice, pipeline, [pdq_value(_pdq(n)) for n in range(30, 40)] + [_video(0)],
             [f"p{n}" for n in range(30, 40)] + ["v0"])
    settings.INDEX_DELTA_MAX_ROWS = 5
    indexes.fresh(max_age=0)  # catches up, sees a delta of 13 > 5, rotates in the background
    indexes._worker.join()

    rotated = snapshot.file_identity(snapshot_path())
    assert rotated != before and indexes.snapshot_identity == rotated
    assert indexes.pdq.delta_size == 0 and indexes.frames.delta_size == 0
    expected = _fresh_build_answers(settings)
    assert _answers(indexes) == expected

    # The other process still searches its old mapping, exactly, until it maps the new file.
    assert other_process.snapshot_identity == before
    assert _answers(other_process) == expected  # its old mapping and delta, caught up, or the new file
    other_process._worker.join()
    assert other_process.snapshot_identity == rotated
    assert _answers(other_process) == expected
    other_process.reset()


@pytest.mark.parametrize("damage", ["truncated", "corrupted", "foreign", "ahead of the feed"])
def test_a_damaged_or_foreign_snapshot_is_rebuilt_and_searches_never_fail(
        alice, pipeline, settings_for_sharing, damage):
    settings = settings_for_sharing
    _publish(alice, pipeline, [pdq_value(_pdq(n)) for n in range(20)], [f"p{n}" for n in range(20)])
    indexes.fresh()
    path = snapshot_path()
    indexes.reset()
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        path.write_bytes(bytes(data[: len(data) - 4096]))
    elif damage == "corrupted":
        data[-5000] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        arrays = _fresh_private_build(settings)
        settings.INDEX_SHARED = True
        meta = snapshot.open_snapshot(path).meta
        meta = {**meta, "database": "0" * 16} if damage == "foreign" else {**meta, "seq": meta["seq"] + 1}
        # A snapshot that claims this database's name but holds none of its hashes.
        empty = {name: getattr(arrays, name).freeze().arrays() for name in ("pdq", "frames")}
        empty["pdq"][0]["ids"] = np.zeros_like(empty["pdq"][0]["ids"])
        snapshot.write(path, empty, meta)
    damaged_identity = snapshot.file_identity(path)

    answers = _answers(indexes)

    assert snapshot.file_identity(path) != damaged_identity  # rewritten
    assert indexes.pdq.shared
    assert answers == _fresh_build_answers(settings)
    assert list(answers[0][0][0].values()) == [0]  # query 0 is p0 itself


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_snapshot_damaged_under_running_processes_is_rewritten_from_their_own_index(
        alice, pipeline, settings_for_sharing):
    settings = settings_for_sharing
    _publish(alice, pipeline, [pdq_value(_pdq(n)) for n in range(20)], [f"p{n}" for n in range(20)])
    indexes.fresh()
    mapped = indexes.snapshot_identity
    alice.submit(alice.retraction("p0"))
    _publish(alice, pipeline, [pdq_value(_pdq(n)) for n in range(20, 25)], [f"p{n}" for n in range(20, 25)])
    path = snapshot_path()
    damaged = path.with_name("damaged")
    damaged.write_bytes(path.read_bytes()[:-4096])
    damaged.replace(path)

    answers = _answers(indexes)  # searches its mapping, exactly, and repairs the file in the background
    indexes._worker.join()

    assert indexes.snapshot_identity not in (None, mapped)
    assert indexes.snapshot_identity == snapshot.file_identity(path)
    assert indexes.pdq.delta_size == 0
    assert answers == _answers(indexes) == _fresh_build_answers(settings)


def test_a_database_keeps_its_snapshot_name_under_the_projects_postgresql_backend(monkeypatch):
    """Upgrading to consortium.postgresql (Django's backend with a cheaper health check) must not
    orphan every host's snapshot file and rebuild the index from the database."""
    from django.db import connection

    from hashes.matching import database_fingerprint

    names = {}
    for engine in ("django.db.backends.postgresql", "consortium.postgresql"):
        monkeypatch.setitem(connection.settings_dict, "ENGINE", engine)
        names[engine] = database_fingerprint()
    assert names["django.db.backends.postgresql"] == names["consortium.postgresql"]
    monkeypatch.setitem(connection.settings_dict, "ENGINE", "django.db.backends.sqlite3")
    assert database_fingerprint() != names["consortium.postgresql"]
