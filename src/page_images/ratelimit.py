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
from django.utils.translation import gettext_noop

from page_images.conf import app_settings
from page_images.exceptions import InvalidSettingValueError, PageImagesError

_UNITS = {"s": 1, "m": 60, "h": 3600}


class RateLimitUnavailable(PageImagesError):
    """The cache that counts clicks could not be reached: the click can be neither counted nor let
    through uncounted, so it is refused with a message (a 503), never a bare 500."""


def parse_rate(rate: str) -> tuple[int, int]:
    """``"30/m"`` → (30, 60); raise ``ValueError`` (an :class:`InvalidSettingValueError`)
    for anything else."""
    count, sep, unit = rate.partition("/")
    if not sep or not count.strip().isdigit() or unit.strip() not in _UNITS or int(count) < 1:
        raise InvalidSettingValueError(
            gettext_noop("%(value)s is not of the form 'N/s', 'N/m' or 'N/h'"),
            {"value": repr(rate)},
        )
    return int(count), _UNITS[unit.strip()]


def allow(user: Any) -> bool:
    """Count one click for ``user``; False once the limit for the current window is used up.

    Raises :class:`RateLimitUnavailable` when the cache fails (Redis down, say).
    """
    if not app_settings.RATE_LIMIT:
        return True
    limit, window = parse_rate(app_settings.RATE_LIMIT)
    key = f"page_images:clicks:{user.pk}:{int(time.time() // window)}"
    # Increment first: a click within a window costs one cache call (two round trips with
    # Django's Redis cache, whose incr checks that the key exists) instead of an add and an incr.
    try:
        try:
            count = cache.incr(key)
        except ValueError:  # the window's first click, unless another click started it meanwhile
            count = 1 if cache.add(key, 1, timeout=window + 1) else cache.incr(key)
    except Exception as exc:
        raise RateLimitUnavailable(f"{type(exc).__name__}: {exc}") from exc
    return count <= limit
