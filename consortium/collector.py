"""Python's cyclic garbage collector in the long-lived processes: web and Celery workers.

A collection of the oldest generation walks every tracked object the process holds. What a worker
loads as it starts (Django, the apps, numpy, numba and the match index's code) lives as long as the
worker, so `settle` collects what is garbage already and moves the rest out of every later
collection (gc.freeze). It runs when the worker has started, and again once the match index has
loaded beside the first requests: the 78,000 objects that loading leaves made every full collection
cost 10 ms, several times a second under family matches. The loading thread only asks for it; the
thread serving requests or tasks settles before the next one starts (`settle_if_asked`, from
gunicorn's `pre_request` and Celery's `task_prerun`), when nothing of the one before (a response in
reference cycles, a failure's traceback) is alive to be frozen with the rest.

The young generation is collected after YOUNG_THRESHOLD allocations instead of CPython's 700: a
match inside a 1,000-hash family builds about 100,000 short-lived objects, and each young collection
moves the ones still in use into older generations, whose collections then walk them again.
Objects without reference cycles are freed as before, when their last reference goes."""

from __future__ import annotations

import gc
import threading

YOUNG_THRESHOLD = 10_000

_asked = threading.Event()


def settle() -> None:
    """Collect what is garbage now, keep every object still alive out of later collections, and
    collect the young generation every YOUNG_THRESHOLD allocations. In the thread that serves
    requests or tasks, before one starts."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)


def settle_later() -> None:
    """From another thread: settle before the next request or task."""
    _asked.set()


def settle_if_asked() -> None:
    """Before a request or a task: settle, if another thread asked for it since."""
    if _asked.is_set():
        _asked.clear()
        settle()
