"""Django's PostgreSQL backend, with a connection health check that costs no round trip.

With CONN_HEALTH_CHECKS Django asks the server (`SELECT 1`) before the first query of every request
and every Celery task: on a lone match that was one round trip in five. An idle connection has
nothing to read from its socket, so a readable socket means the server ended it (a restart, a
failover, `pg_terminate_backend`, an idle timeout: each sends its reason or closes the socket),
and a connection psycopg2 closed knows it. Either way the connection is replaced before it is used,
as Django's check would. A connection lost without a word (a network cut) is not seen by either
check before the first query: that query fails, the request answers 503 database_unavailable
(consortium.api.middleware), and Django closes the connection after it."""

from __future__ import annotations

import select

from django.conf import settings
from django.db.backends.postgresql import base
from psycopg2 import extensions


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        raw = self.connection
        if raw is None or raw.closed:
            return False
        if raw.get_transaction_status() != extensions.TRANSACTION_STATUS_IDLE:
            return super().is_usable()  # mid-transaction or in an unknown state: ask the server
        poller = select.poll()  # not select(): a process may hold more than 1,024 descriptors
        poller.register(raw.fileno(), select.POLLIN | select.POLLPRI)
        return not poller.poll(0)

    def init_connection_state(self) -> None:
        super().init_connection_state()
        if settings.DATABASE_PREPARED_STATEMENTS:
            # The reads prepared on this connection (consortium/db.read_prepared) are planned once:
            # PostgreSQL would otherwise plan each execution afresh, for a `= ANY($1)` whose array it
            # cannot size, which is the cost preparing saves. Only those reads are prepared.
            with self.connection.cursor() as cursor:
                cursor.execute("SET plan_cache_mode = force_generic_plan")
