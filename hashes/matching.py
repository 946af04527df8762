"""The match indexes of this process: every active PDQ hash, and every usable frame of every active
vPDQ video, kept exact and fresh by following the feed.

The database stays the source of truth. The bulk of the indexes is a snapshot file under
INDEX_SNAPSHOT_DIR (hashes/signals/snapshot.py) that every process on the host maps read-only, so
its pages are in memory once per host however many processes search it. Each process keeps
beside it only a small delta: the feed's `hash.added` rows and `hash.retracted` ids after the
snapshot's seq, at most INDEX_REFRESH_SECONDS old for searches, exactly current for the publisher
(which refreshes under the feed lock).

Who writes a snapshot, under an exclusive lock on a file beside it so that one process writes and
the others wait or carry on:
- the first process to find no usable snapshot (none, corrupt, from another database, or written
  with another frame quality) builds its indexes from the database and writes one;
- the first process whose delta passes INDEX_DELTA_MAX_ROWS folds it into a new snapshot, in a
  background thread, while searches go on.
A process that sees a new file at the snapshot's path maps it and catches it up with the feed in
the background, then swaps it in; searches under way finish on the old mapping, which is released
with them. Where no snapshot can be written (INDEX_SHARED false, or a read-only disk), a process
keeps a private index in memory as it did before snapshots.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, NamedTuple

import numpy as np
from django.conf import settings
from django.db import connection

from .models import Event, Hash, SignalType
from .services.feed import feed_head
from .signals import snapshot
from .signals.vpdq import usable_rows

if TYPE_CHECKING:
    from .signals.index import FrozenIndex, PdqIndex

logger = logging.getLogger(__name__)

# Reading the database in slices keeps a rebuild's memory flat however large the corpus.
BUILD_SLICE = 50_000
PARALLEL_FROM = 16
# A snapshot that could not be written is tried again no sooner than this.
ROTATE_RETRY_SECONDS = 60.0


class Ready(NamedTuple):
    """Indexes current to the feed's `seq`, and the snapshot file they map (None: private memory)."""

    pdq: PdqIndex
    frames: PdqIndex
    seq: int
    identity: tuple[int, int] | None


class MatchIndexes:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.pdq: Any = None
        self.frames: Any = None
        self.applied_seq = 0
        self.refreshed_at = 0.0
        self.snapshot_identity: tuple[int, int] | None = None  # the snapshot file mapped, if any
        self._generation = 0  # bumped by reset(), so a background switch started before it is dropped
        self._worker: threading.Thread | None = None
        self._rotate_after = 0.0

    def reset(self) -> None:
        with self._lock:
            self.pdq = self.frames = None
            self.applied_seq, self.refreshed_at = 0, 0.0
            self.snapshot_identity = None
            self._generation += 1
            self._rotate_after = 0.0
        worker = self._worker
        if worker is not None:
            worker.join()

    def mark_stale(self) -> None:
        """The feed moved on in this process (it published): catch up before the next search."""
        self.refreshed_at = 0.0

    @property
    def ready(self) -> bool:
        return self.pdq is not None

    def fresh(self, *, max_age: float | None = None) -> MatchIndexes:
        """These indexes, built (or mapped) if need be and caught up with the feed if older than `max_age`."""
        max_age = settings.INDEX_REFRESH_SECONDS if max_age is None else max_age
        with self._lock:
            if self.pdq is None:
                self._start()
            elif time.monotonic() - self.refreshed_at >= max_age:
                self.applied_seq = self._catch_up(self.pdq, self.frames, self.applied_seq)
                self.refreshed_at = time.monotonic()
                self._maybe_follow_snapshot()
        return self

    def _start(self) -> None:
        mapped = built = None
        if settings.INDEX_SHARED:
            mapped = self._mapped_snapshot()
            if mapped is None:
                with snapshot_lock(blocking=True):
                    # Another process may have written one while this one waited for the lock.
                    mapped = self._mapped_snapshot()
                    if mapped is None:
                        built = self._build()
                        mapped = self._write_snapshot(built.pdq.freeze(), built.frames.freeze(), built.seq)
        # A private build, if any, is released here when the snapshot written from it is mapped.
        ready = mapped or built or self._build()
        self.applied_seq = self._catch_up(ready.pdq, ready.frames, ready.seq)
        self.refreshed_at = time.monotonic()
        self.pdq, self.frames = ready.pdq, ready.frames
        self.snapshot_identity = ready.identity

    def _build(self) -> Ready:
        """Private indexes read from the database, and the feed seq they are current from."""
        from .signals.index import PdqIndex  # numba compiles on import; only processes that match pay

        # Read the feed head first: a hash added after this point is applied again from the feed,
        # which is harmless (searches report each id once), while one added before is in the read.
        seq = feed_head()
        active = Hash.objects.filter(state=Hash.State.ACTIVE).order_by("pk")
        ids: list[int] = []
        values: list[str] = []
        for pk, value in sliced(active.filter(signal_type=SignalType.PDQ).values_list("pk", "value")):
            ids.append(pk)
            values.append(value)
        pdq = PdqIndex.build(np.array(ids, dtype=np.int64), values)
        frame_ids: list[np.ndarray] = []
        frame_rows: list[np.ndarray] = []
        for pk, frames in sliced(active.filter(signal_type=SignalType.VPDQ).values_list("pk", "frames")):
            rows = self._usable(frames)
            frame_ids.append(np.full(len(rows), pk, dtype=np.int64))
            frame_rows.append(rows)
        frames_index = PdqIndex.build(
            np.concatenate(frame_ids) if frame_ids else np.empty(0, np.int64),
            np.concatenate(frame_rows) if frame_rows else np.empty((0, 4), np.uint64),
        )
        return Ready(pdq, frames_index, seq, None)

    def _mapped_snapshot(self) -> Ready | None:
        """The host's snapshot, mapped, if it is whole and was written from this database as it is now."""
        from .signals.index import PdqIndex

        path = snapshot_path()
        if snapshot.file_identity(path) is None:
            return None
        try:
            found = snapshot.open_snapshot(path)
            problem = self._stale_because(found.meta)
            if problem is None:
                # No merging in the background: folding the delta in is a new snapshot's job, once a host.
                pdq, frames = (PdqIndex.from_arrays(*found.indexes[name], auto_merge=False)
                               for name in ("pdq", "frames"))
                return Ready(pdq, frames, int(found.meta["seq"]), found.identity)
        except (snapshot.SnapshotError, KeyError, ValueError) as error:
            problem = str(error) or type(error).__name__
        logger.warning("match index snapshot %s is not used (%s); it will be rebuilt", path, problem)
        return None

    def _stale_because(self, meta: dict[str, Any]) -> str | None:
        if meta.get("database") != database_fingerprint():
            return "written from another database"
        if meta.get("frame_quality") != settings.VPDQ_FRAME_QUALITY:
            return "written with another VPDQ_FRAME_QUALITY"
        seq = int(meta.get("seq", -1))
        if seq < 0 or seq > feed_head():
            return "ahead of this database's feed"
        if seq and str(Event.objects.filter(seq=seq).values_list("event_id", flat=True).first()) != meta.get("event"):
            return "its last event is not this database's"
        newest = meta.get("newest_hash")
        if newest is not None and Hash.objects.filter(pk=newest[0], value=newest[1]).count() != 1:
            return "its newest hash is not this database's"
        return None

    def _write_snapshot(self, pdq: FrozenIndex, frames: FrozenIndex, seq: int) -> Ready | None:
        """Write these indexes as the host's snapshot and map it; None when it cannot be written."""
        path = snapshot_path()
        event = Event.objects.filter(seq=seq).values_list("event_id", flat=True).first() if seq else None
        newest = Hash.objects.order_by("-pk").values_list("pk", "value").first()
        meta = {
            "seq": seq, "event": str(event) if event is not None else None,
            "newest_hash": list(newest) if newest is not None else None,
            "database": database_fingerprint(), "frame_quality": settings.VPDQ_FRAME_QUALITY,
        }
        try:
            snapshot.write(path, {"pdq": pdq.arrays(), "frames": frames.arrays()}, meta)
        except OSError as error:
            logger.warning("match index snapshot %s could not be written (%s); this process keeps its own", path, error)
            return None
        return self._mapped_snapshot()

    def _maybe_follow_snapshot(self) -> None:
        """Start mapping a newer snapshot, or writing one when the delta has grown past its bound or
        the file has become unusable."""
        if not settings.INDEX_SHARED or time.monotonic() < self._rotate_after:
            return
        if self._worker is not None and self._worker.is_alive():
            return
        changed = snapshot.file_identity(snapshot_path()) != self.snapshot_identity
        grown = self.pdq.delta_size + self.frames.delta_size > settings.INDEX_DELTA_MAX_ROWS
        if changed or grown:
            self._worker = threading.Thread(
                target=self._renew, args=(self._generation,), name="match-index-snapshot", daemon=True
            )
            self._worker.start()

    def _renew(self, generation: int) -> None:
        path = snapshot_path()
        try:
            mapped = None
            if snapshot.file_identity(path) != self.snapshot_identity:
                mapped = self._mapped_snapshot()  # written by another process
            if mapped is None:
                with snapshot_lock(blocking=False) as locked:
                    if not locked:
                        return  # another process is writing one; a later refresh maps it
                    if snapshot.file_identity(path) != self.snapshot_identity:
                        mapped = self._mapped_snapshot()
                    if mapped is None:
                        # The file is still the one this process maps, or unusable: fold this delta in.
                        with self._lock:
                            state = (self.pdq.freeze(), self.frames.freeze(), self.applied_seq)
                        mapped = self._write_snapshot(*state)
            if mapped is None:
                self._rotate_after = time.monotonic() + ROTATE_RETRY_SECONDS
                return
            seq = self._catch_up(mapped.pdq, mapped.frames, mapped.seq)
            with self._lock:
                if generation != self._generation:
                    return
                # Whatever this process applied meanwhile is applied to the new pair before the swap.
                self.applied_seq = self._catch_up(mapped.pdq, mapped.frames, seq)
                self.pdq, self.frames = mapped.pdq, mapped.frames
                self.snapshot_identity = mapped.identity
        except Exception:
            logger.exception("match index snapshot could not be renewed; searches go on with the current one")
            self._rotate_after = time.monotonic() + ROTATE_RETRY_SECONDS
        finally:
            connection.close()

    def _catch_up(self, pdq: PdqIndex, frames_index: PdqIndex, applied_seq: int) -> int:
        """Apply the feed after `applied_seq` to these indexes; returns the seq they are current to."""
        head = feed_head()
        if head > applied_seq:
            changes = (
                Event.objects.filter(
                    seq__gt=applied_seq, seq__lte=head, type__in=[Event.Type.ADDED, Event.Type.RETRACTED],
                    hash__signal_type__in=[SignalType.PDQ, SignalType.VPDQ],
                )
                .order_by("seq")
                .values_list("type", "hash_id", "hash__signal_type", "hash__value", "hash__frames")
            )
            for kind, hash_id, signal_type, value, frames in changes.iterator(chunk_size=2000):
                index = pdq if signal_type == SignalType.PDQ else frames_index
                if kind == Event.Type.RETRACTED:
                    index.remove(hash_id)
                elif signal_type == SignalType.PDQ:
                    index.add(hash_id, value)
                else:
                    rows = self._usable(frames)
                    if len(rows):
                        index.add_many(np.full(len(rows), hash_id, dtype=np.int64), rows)
        return max(head, applied_seq)

    @staticmethod
    def _usable(frames: list[dict[str, Any]]) -> np.ndarray:
        return usable_rows(frames, quality=settings.VPDQ_FRAME_QUALITY)

    def pdq_within(self, value: str, radius: int) -> dict[int, int]:
        """{hash id: distance} of every active PDQ hash within `radius` bits of `value`."""
        found = self.pdq.search(value, radius)
        return nearest_per_id(found.ids, found.distances)

    def pdq_within_many(self, values: list[str], radius: int) -> list[dict[int, int]]:
        # A few queries are faster one by one: starting the batch search's parallel threads costs
        # more than it saves, and in a forked web worker its OpenMP threads measurably slow the rest.
        if len(values) < PARALLEL_FROM:
            return [self.pdq_within(value, radius) for value in values]
        return [nearest_per_id(m.ids, m.distances) for m in self.pdq.search_many(values, radius)]

    def videos_sharing_a_frame(self, frames: list[dict[str, Any]]) -> set[int]:
        """Ids of active vPDQ videos with a usable frame within the frame distance of one of these."""
        return self.videos_sharing_rows(self._usable(frames))

    def videos_sharing_rows(self, rows: np.ndarray) -> set[int]:
        """`videos_sharing_a_frame` for frames already filtered and deduplicated by `usable_rows`."""
        return set(self.frames_shared(rows))

    def frames_shared(self, rows: np.ndarray) -> dict[int, int]:
        """{video id: how many of these (usable, distinct) frames have a match in it}."""
        return frames_shared(self.frames, rows)


def frames_shared(frames: PdqIndex, rows: np.ndarray) -> dict[int, int]:
    """{id: how many of these frames have a match within the frame distance under that id in `frames`}."""
    shared: dict[int, int] = {}
    if len(rows) == 0:
        return shared
    for matches in frames.search_many(rows, settings.VPDQ_FRAME_DISTANCE):
        for hash_id in set(matches.ids.tolist()):
            shared[hash_id] = shared.get(hash_id, 0) + 1
    return shared


def nearest_per_id(ids: np.ndarray, distances: np.ndarray) -> dict[int, int]:
    nearest: dict[int, int] = {}
    for hash_id, distance in zip(ids.tolist(), distances.tolist()):
        if hash_id not in nearest or distance < nearest[hash_id]:
            nearest[hash_id] = distance
    return nearest


def sliced(rows: Any) -> Iterable[Any]:
    """Iterate a values_list queryset ordered by pk in slices, by keyset (no OFFSET)."""
    last = 0
    while True:
        chunk = list(rows.filter(pk__gt=last)[:BUILD_SLICE])
        if not chunk:
            return
        yield from chunk
        last = chunk[-1][0]


def database_fingerprint() -> str:
    """Which database a snapshot was written from: a host's processes may serve several."""
    conf = dict(connection.settings_dict)
    if conf["ENGINE"] == "consortium.postgresql":  # Django's backend, ours since: the same database
        conf["ENGINE"] = "django.db.backends.postgresql"
    described = "|".join(str(conf.get(key) or "") for key in ("ENGINE", "NAME", "HOST", "PORT"))
    return hashlib.sha256(described.encode()).hexdigest()[:16]


def snapshot_path() -> Path:
    return Path(settings.INDEX_SNAPSHOT_DIR) / f"match-index-{database_fingerprint()}.snap"


@contextmanager
def snapshot_lock(*, blocking: bool) -> Iterator[bool]:
    """Hold the lock that lets one process of the host write the snapshot; yields whether it is held."""
    path = snapshot_path().with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


indexes = MatchIndexes()


def index_ready() -> bool:
    """Whether this process can search now: its index is mapped from a snapshot or built."""
    return indexes.ready


def warm_in_background() -> threading.Thread | None:
    """Make this process's indexes ready now (map the host's snapshot, or build it), beside its first
    requests or tasks rather than inside them: a publisher would otherwise do it while holding the
    feed lock (a minute at 10 M hashes when no snapshot exists yet). The thread doing it, if any."""
    if not settings.INDEX_WARM_ON_START:
        return None

    def warm() -> None:
        from django.db import connection

        from consortium import collector

        try:
            indexes.fresh()
        finally:
            connection.close()
        collector.settle_later()  # what loading the index left lives as long as the process

    thread = threading.Thread(target=warm, name="match-index-warm-up", daemon=True)
    thread.start()
    return thread
