"""Start distributing as soon as the pipeline has published, without the pipeline knowing about
distribution: after each pipeline task a worker looks at the feed head, and if it moved, queues a
dispatch. The beat sweep (WEBHOOK_SWEEP_INTERVAL_SECONDS) covers whatever this misses, for example
events published by `drain()` outside Celery, or a worker that died before this ran."""

from __future__ import annotations

import logging
import threading
from typing import Any

logger = logging.getLogger(__name__)

PIPELINE_TASKS = frozenset({"hashes.tasks.verify_statements", "hashes.tasks.publish_verified"})

_lock = threading.Lock()
_last_head: int | None = None


def after_task(sender: Any = None, **kwargs: Any) -> None:
    if getattr(sender, "name", None) in PIPELINE_TASKS:
        feed_moved()


def feed_moved() -> None:
    global _last_head
    from .services.heads import feed_head
    from .tasks import enqueue_dispatch

    try:
        head = feed_head()
    except Exception:
        logger.exception("Could not read the feed head; the distribution sweep will catch up.")
        return
    with _lock:
        if head == _last_head:
            return
        _last_head = head
    enqueue_dispatch()
