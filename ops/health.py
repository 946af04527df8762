"""Readiness: can this process do its work now? The database answers, the broker accepts
connections, this process's match index is built, and the pipeline is not too far behind.
Every check is bounded (ops.bounded), so /readyz answers even when what it checks does not."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from .bounded import run_bounded

logger = logging.getLogger(__name__)

Check = dict[str, Any]


def failed(error: str, exc: BaseException | None = None) -> Check:
    """A failed check. Only the exception's type is shown: its text may carry a URL with a password."""
    return {"ok": False, "error": error, **({"detail": type(exc).__name__} if exc else {})}


def database() -> Check:
    def select_one() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    try:
        run_bounded(select_one)
    except Exception as exc:  # noqa: BLE001  whatever stops the database answering, it is not ready
        return failed("database_unavailable", exc)
    return {"ok": True}


def broker() -> Check:
    from consortium.celery_app import app

    def connect() -> None:
        # Socket timeouts too (Redis), so that a broker that accepts but never answers frees the
        # thread; twice the check's bound, so that the bound (TimeoutError) always answers first, and
        # never a socket timeout of the same length racing it (OperationalError).
        timeout = 2 * settings.READY_CHECK_TIMEOUT_SECONDS
        options = {**(app.conf.broker_transport_options or {}), "socket_timeout": timeout,
                   "socket_connect_timeout": timeout}
        with app.connection_for_write(connect_timeout=timeout, transport_options=options) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
            conn.default_channel  # noqa: B018  opening a channel reaches the broker (Redis: a PING)

    try:
        run_bounded(connect, database=False)
    except Exception as exc:  # noqa: BLE001  kombu and redis raise many kinds; any of them is a failure
        return failed("broker_unavailable", exc)
    return {"ok": True}


def index() -> Check:
    from hashes.matching import index_ready

    if index_ready():
        return {"ok": True}
    if not settings.INDEX_WARM_ON_START:
        return {"ok": True, "detail": "built on first use (INDEX_WARM_ON_START is off)"}
    return failed("index_building")


def pipeline_lag() -> Check:
    """Seconds the oldest statement not yet published or rejected has waited."""
    from hashes.models import Statement

    def oldest_wait() -> float:
        waiting = Statement.objects.filter(state__in=[Statement.State.RECEIVED, Statement.State.VERIFIED])
        firsts = [waiting.filter(state=state, priority=priority).order_by("received_at")
                  .values_list("received_at", flat=True).first()
                  for state in (Statement.State.RECEIVED, Statement.State.VERIFIED) for priority in (True, False)]
        now = timezone.now()
        return max([(now - first).total_seconds() for first in firsts if first] or [0.0])

    limit = settings.READY_MAX_PIPELINE_LAG_SECONDS
    try:
        lag = run_bounded(oldest_wait)
    except Exception as exc:  # noqa: BLE001  as in database()
        return failed("database_unavailable", exc)
    if limit and lag > limit:
        return {**failed("pipeline_lagging"), "value": round(lag, 3), "max": limit}
    return {"ok": True, "value": round(lag, 3), "max": limit or None}


CHECKS: dict[str, Callable[[], Check]] = {
    "database": database, "broker": broker, "index": index, "pipeline_lag_seconds": pipeline_lag,
}


def readiness() -> tuple[bool, dict[str, Check]]:
    """(ready, {check: result}); the checks run side by side, each bounded."""
    with ThreadPoolExecutor(max_workers=len(CHECKS), thread_name_prefix="readyz") as pool:
        futures = {name: pool.submit(check) for name, check in CHECKS.items()}
        results = {name: future.result() for name, future in futures.items()}
    for name, result in results.items():
        if not result["ok"]:
            logger.warning("Not ready: %s (%s).", name, result["error"])
    return all(result["ok"] for result in results.values()), results
