"""A per-user rate limit on clicks, counted in Django's cache.

The claim already stops a second job for the same record; this stops one account from starting jobs
on hundreds of records in a loop (a provider bill, and a queue others wait behind). The count lives
in the default cache: with several web processes, configure a shared cache (Redis, Memcached), or
each process counts on its own.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.cache import cache

from page_images.conf import app_settings

_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_rate(rate: str) -> tuple[int, int]:
    """``"30/m"`` → (30, 60); raise ``ValueError`` for anything else."""
    count, sep, unit = rate.partition("/")
    if not sep or not count.strip().isdigit() or unit.strip() not in _UNITS or int(count) < 1:
        raise ValueError(f"{rate!r} is not of the form 'N/s', 'N/m' or 'N/h'")
    return int(count), _UNITS[unit.strip()]


def allow(user: Any) -> bool:
    """Count one click for ``user``; False once the limit for the current window is used up."""
    if not app_settings.RATE_LIMIT:
        return True
    limit, window = parse_rate(app_settings.RATE_LIMIT)
    key = f"page_images:clicks:{user.pk}:{int(time.time() // window)}"
    # Increment first: a click within a window costs one cache call (two round trips with
    # Django's Redis cache, whose incr checks that the key exists) instead of an add and an incr.
    try:
        count = cache.incr(key)
    except ValueError:  # the window's first click, unless another click started it meanwhile
        count = 1 if cache.add(key, 1, timeout=window + 1) else cache.incr(key)
    return count <= limit
