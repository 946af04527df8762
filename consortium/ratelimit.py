"""Counting hits in fixed windows, in the cache every server process shares (settings: CACHES,
Redis in production, files under var/ in embedded mode), so that the bound holds however many
gunicorn processes and hosts answer one client."""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
import time
import weakref

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from redis.connection import Connection, ConnectionPool
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

CACHE_ALIAS = "default"


def window_hit(name: str, *, period: int, amount: int = 1, now: float | None = None) -> tuple[int, int]:
    """Add `amount` to the count of `name` in the current window of `period` seconds. Returns the
    count including it, and the whole seconds until the window ends (at least 1).

    On Redis a hit is one atomic INCRBY (redis_hit); the file cache reads and writes, so there
    concurrent requests of one client may be under-counted by a few (at most the number of web
    processes). The window is part of the key, so a count never outlives its window whatever the
    backend does with timeouts (the file cache's `incr` forgets them); there the first hit of a window deletes the
    client's previous count, named by `<name>:last`, so that a file cache keeps about two entries
    per client and kind instead of one per window. If the cache is unreachable the hit is let
    through (and logged): a cache outage must not take the API down with it."""
    now = time.time() if now is None else now
    window = int(now // period)
    left = max(1, math.ceil((window + 1) * period - now))
    store = caches[CACHE_ALIAS]
    key = f"{name}:{window}"
    try:
        if isinstance(store, RedisCache):
            return redis_hit(store, key, amount, timeout=period + 1), left
        if not store.add(key, amount, timeout=period + 1):
            try:
                return store.incr(key, amount), left
            except ValueError:  # expired between add and incr
                store.set(key, amount, timeout=period + 1)
                return amount, left
        previous = store.get(f"{name}:last")
        if previous is not None and previous != window:
            store.delete(f"{name}:{previous}")
        store.set(f"{name}:last", window, timeout=None)
        return amount, left
    except Exception:
        logger.warning("Rate-limit cache unreachable; letting %s through uncounted.", name, exc_info=True)
        return 0, left


# INCRBY, and an expiry on the count it creates: one atomic round trip.
HIT_SCRIPT = """local count = redis.call('INCRBY', KEYS[1], ARGV[1])
if count == tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return count"""
HIT_SHA = hashlib.sha1(HIT_SCRIPT.encode()).hexdigest()

# Django's Redis cache makes a new client object for every command; the hit on every API request
# reuses one per connection pool.
_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# And it sends the hit on a connection of each thread's own, by the script's digest: redis-py's
# command path (a pool checkout that polls the socket, retries, response callbacks, metrics) cost
# about 30 µs of CPU against 14 µs for the send and read alone, on every API request.
_lanes = threading.local()


def redis_hit(store: RedisCache, key: str, amount: int, *, timeout: int) -> int:
    """A hit counted by one script. Django's Redis cache keeps integers as they are, so the count
    stays readable through the cache API. If Redis has emptied its script cache the hit is sent
    again with the script's text, which loads it; on a connection error (Redis restarted) the
    thread's connection is closed and the hit sent as before, through redis-py's client and its
    retries; the next hit opens the thread's connection again. A reply that does not come within
    CACHE_SOCKET_TIMEOUT_SECONDS is not waited for and the hit is not sent again: Redis may count
    it late, and sending it twice would count it twice."""
    full = store.make_and_validate_key(key)
    backend = store._cache
    client = _clients.get(backend)
    if client is None:
        client = _clients[backend] = backend.get_client(full, write=True)
    connection = lane(client.connection_pool)
    try:
        connection.send_command("EVALSHA", HIT_SHA, 1, full, amount, timeout)
        return int(connection.read_response())
    except NoScriptError:
        pass  # EVAL below loads it
    except (RedisTimeoutError, TimeoutError):
        connection.disconnect()  # slow, not gone: the caller lets the request through uncounted
        raise
    except (RedisError, OSError):
        connection.disconnect()
    except BaseException:
        connection.disconnect()  # interrupted (a worker timeout): a reply left unread would answer the next hit
        raise
    return int(client.eval(HIT_SCRIPT, 1, full, amount, timeout))


def lane(pool: ConnectionPool) -> Connection:
    """This thread's connection to the pool's server, made like the pool's own but kept out of it
    (and made anew in a forked process)."""
    lanes = getattr(_lanes, "connections", None)
    if lanes is None or _lanes.pid != os.getpid():
        lanes = _lanes.connections = weakref.WeakKeyDictionary()
        _lanes.pid = os.getpid()
    connection = lanes.get(pool)
    if connection is None:
        connection = lanes[pool] = pool.connection_class(**pool.connection_kwargs)
    return connection
