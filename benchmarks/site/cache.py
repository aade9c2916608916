"""One Redis connection pool per process for Django's RedisCache, whatever the request.

Django keeps its cache objects per async context, so under ASGI every request builds a new
``RedisCache`` and, with it, a new connection pool: one TCP connection (and redis-py's
``CLIENT SETINFO`` round trips) per request that touches the cache, such as the trigger view's rate
limit. Naming this class in ``CACHES[...]["OPTIONS"]["pool_class"]`` shares one pool per process
(see docs/deployment.md).
"""

from __future__ import annotations

import threading
from typing import Any

from redis import ConnectionPool

_pools: dict[tuple[str, str], ConnectionPool] = {}
_lock = threading.Lock()


class SharedConnectionPool(ConnectionPool):
    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> ConnectionPool:  # type: ignore[override]
        key = (url, repr(sorted(kwargs.items())))
        with _lock:
            pool = _pools.get(key)
            if pool is None:
                pool = _pools[key] = ConnectionPool.from_url(url, **kwargs)
            return pool
