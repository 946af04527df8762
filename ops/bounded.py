"""Database and broker look-ups for /readyz and /metrics that answer in bounded time, whatever the
database or broker does: each runs on a small pool of threads of its own and is waited for at most
READY_CHECK_TIMEOUT_SECONDS (and on PostgreSQL its queries carry that statement_timeout). One that
hangs (a connect to a host that never answers) keeps its thread until the socket gives up, but the
pool is bounded: later checks queue behind it and time out too, which is the right answer."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from django.conf import settings
from django.db import connection, transaction

T = TypeVar("T")

# One pool per service, so that a broker that hangs never makes the database look down.
_pools = {name: ThreadPoolExecutor(max_workers=4, thread_name_prefix=f"ops-{name}") for name in ("database", "broker")}


def _read_only(look_up: Callable[[], T], timeout: float) -> T:
    try:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL statement_timeout = %s", [max(1, int(timeout * 1000))])
            result = look_up()
            transaction.set_rollback(True)  # it only read; nothing to keep, the timeout included
        return result
    finally:
        connection.close()  # a pool thread keeps no connection open between checks


def run_bounded(look_up: Callable[[], T], *, database: bool = True, timeout: float | None = None) -> T:
    """`look_up()`, or TimeoutError once `timeout` (READY_CHECK_TIMEOUT_SECONDS) has passed."""
    timeout = settings.READY_CHECK_TIMEOUT_SECONDS if timeout is None else timeout
    future = (_pools["database"].submit(_read_only, look_up, timeout) if database
              else _pools["broker"].submit(look_up))
    try:
        return future.result(timeout=timeout)
    except FutureTimeout:
        future.cancel()
        raise TimeoutError(f"no answer within {timeout:g} s") from None
