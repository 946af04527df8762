"""The match indexes of this process: every active PDQ hash, and every usable frame of every active
vPDQ video, kept exact and fresh by following the feed.

The database stays the source of truth. A process builds its indexes from the database on first
use, then applies the feed's `hash.added` and `hash.retracted` events after the last seq it applied:
at most INDEX_REFRESH_SECONDS old for searches, exactly current for the publisher (which refreshes
under the feed lock). Nothing is pickled or shared between processes.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np
from django.conf import settings

from .models import Event, Hash, SignalType
from .services.feed import feed_head
from .signals.vpdq import usable_rows

if TYPE_CHECKING:
    from .signals.index import PdqIndex

# Reading the database in slices keeps a rebuild's memory flat however large the corpus.
BUILD_SLICE = 50_000
PARALLEL_FROM = 16


class MatchIndexes:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.pdq: Any = None
        self.frames: Any = None
        self.applied_seq = 0
        self.refreshed_at = 0.0

    def reset(self) -> None:
        with self._lock:
            self.pdq = self.frames = None
            self.applied_seq, self.refreshed_at = 0, 0.0

    def mark_stale(self) -> None:
        """The feed moved on in this process (it published): catch up before the next search."""
        self.refreshed_at = 0.0

    def fresh(self, *, max_age: float | None = None) -> MatchIndexes:
        """These indexes, built if need be and caught up with the feed if older than `max_age`."""
        max_age = settings.INDEX_REFRESH_SECONDS if max_age is None else max_age
        with self._lock:
            if self.pdq is None:
                self._build()
            elif time.monotonic() - self.refreshed_at >= max_age:
                self._catch_up()
        return self

    def _build(self) -> None:
        from .signals.index import PdqIndex  # numba compiles on import; only processes that match pay

        # Read the feed head first: a hash added after this point is applied again from the feed,
        # which is harmless (searches report each id once), while one added before is in the read.
        self.applied_seq = feed_head()
        active = Hash.objects.filter(state=Hash.State.ACTIVE).order_by("pk")
        ids: list[int] = []
        values: list[str] = []
        for pk, value in sliced(active.filter(signal_type=SignalType.PDQ).values_list("pk", "value")):
            ids.append(pk)
            values.append(value)
        self.pdq = PdqIndex.build(np.array(ids, dtype=np.int64), values)
        frame_ids: list[np.ndarray] = []
        frame_rows: list[np.ndarray] = []
        for pk, frames in sliced(active.filter(signal_type=SignalType.VPDQ).values_list("pk", "frames")):
            rows = self._usable(frames)
            frame_ids.append(np.full(len(rows), pk, dtype=np.int64))
            frame_rows.append(rows)
        self.frames = PdqIndex.build(
            np.concatenate(frame_ids) if frame_ids else np.empty(0, np.int64),
            np.concatenate(frame_rows) if frame_rows else np.empty((0, 4), np.uint64),
        )
        self._catch_up()

    def _catch_up(self) -> None:
        head = feed_head()
        if head > self.applied_seq:
            changes = (
                Event.objects.filter(
                    seq__gt=self.applied_seq, seq__lte=head, type__in=[Event.Type.ADDED, Event.Type.RETRACTED],
                    hash__signal_type__in=[SignalType.PDQ, SignalType.VPDQ],
                )
                .order_by("seq")
                .values_list("type", "hash_id", "hash__signal_type", "hash__value", "hash__frames")
            )
            for kind, hash_id, signal_type, value, frames in changes.iterator(chunk_size=2000):
                index = self.pdq if signal_type == SignalType.PDQ else self.frames
                if kind == Event.Type.RETRACTED:
                    index.remove(hash_id)
                elif signal_type == SignalType.PDQ:
                    index.add(hash_id, value)
                else:
                    rows = self._usable(frames)
                    if len(rows):
                        index.add_many(np.full(len(rows), hash_id, dtype=np.int64), rows)
            self.applied_seq = head
        self.refreshed_at = time.monotonic()

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


indexes = MatchIndexes()


def warm_in_background() -> None:
    """Build this process's indexes now, beside its first requests or tasks rather than inside them:
    a publisher would otherwise build them while holding the feed lock (a minute at 10 M hashes)."""
    if not settings.INDEX_WARM_ON_START:
        return

    def warm() -> None:
        from django.db import connection

        try:
            indexes.fresh()
        finally:
            connection.close()

    threading.Thread(target=warm, name="match-index-warm-up", daemon=True).start()
