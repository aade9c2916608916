"""One Redis connection pool per process for Django's own ``RedisCache``, under ASGI.

Django keeps its cache objects per async context, so under ASGI every request builds a new
``RedisCache`` and, with it, a new redis-py connection pool: the trigger view's rate limit then
opens a TCP connection to Redis (and pays redis-py's ``CLIENT SETINFO`` round trips) on every
click. Measured on the benchmark stack, that made a click cost a third more CPU (Django ticket
#35651, open upstream). Naming this class as the cache's ``pool_class`` gives every cache object of
a process the same pool for the same server and options; django-redis needs nothing of the kind,
as its pools are already per process.
"""

from __future__ import annotations

import threading
from typing import Any

from redis import ConnectionPool

__all__ = ["SharedConnectionPool"]

_pools: dict[tuple[str, str], ConnectionPool] = {}
_lock = threading.Lock()


class SharedConnectionPool(ConnectionPool):
    """``CACHES[...]["OPTIONS"]["pool_class"]`` for ``django.core.cache.backends.redis.RedisCache``.

    redis-py's pool already survives a fork (a child replaces the parent's sockets on first use),
    so one pool per process is safe under preforking servers too.
    """

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> ConnectionPool:  # type: ignore[override]
        key = (url, repr(sorted(kwargs.items())))
        with _lock:
            pool = _pools.get(key)
            if pool is None:
                pool = _pools[key] = ConnectionPool.from_url(url, **kwargs)
            return pool
