"""Counting hits in fixed windows, in the cache every server process shares (settings: CACHES,
Redis in production, files under var/ in embedded mode), so that the bound holds however many
gunicorn processes and hosts answer one client."""

from __future__ import annotations

import logging
import math
import time
import weakref

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

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

# Django's Redis cache makes a new client object for every command; the hit on every API request
# reuses one per connection pool.
_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def redis_hit(store: RedisCache, key: str, amount: int, *, timeout: int) -> int:
    """A hit counted by one script. Django's Redis cache keeps integers as they are, so the count
    stays readable through the cache API."""
    full = store.make_and_validate_key(key)
    backend = store._cache
    client = _clients.get(backend)
    if client is None:
        client = _clients[backend] = backend.get_client(full, write=True)
    return int(client.eval(HIT_SCRIPT, 1, full, amount, timeout))
