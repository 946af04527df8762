"""Python's cyclic garbage collector in the long-lived processes: web workers and Celery workers.

A collection of the oldest generation walks every tracked object the process holds. What a worker
loads as it starts (Django, the apps, numpy, numba and the match index's code) lives as long as the
worker, so `settle` moves it out of every later collection (gc.freeze). It runs when the worker has
started and again when the match index has loaded beside the first requests: the 78,000 objects that
loading leaves made every full collection cost 10 ms, several times a second under family matches.

The young generation is collected after YOUNG_THRESHOLD allocations instead of CPython's 700: a
match inside a 1,000-hash family builds about 100,000 short-lived objects, and each young collection
moves the ones still in use into older generations, whose collections then walk them again.
Objects without reference cycles are freed as before, when their last reference goes."""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000


def settle() -> None:
    """Keep every object alive now out of later collections, and collect the young generation
    every YOUNG_THRESHOLD allocations."""
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
