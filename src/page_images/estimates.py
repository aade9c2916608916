"""How long a picture usually takes here, for the editor who watches a spinner meanwhile.

Image models take ten seconds to minutes, and a spinner alone says nothing of which. Every
finished generation's duration is in the history (:class:`page_images.history.Generation`), so the
generating container can say "usually 20–40 s" for the backend and size the job asked for: the
10th to the 90th percentile of the last :data:`SAMPLE` finished jobs, and nothing at all until
:data:`MIN_SAMPLES` have finished (no estimate is better than a made-up one).

The figure is asked once per page for each backend and size, and kept in Django's cache for
:data:`CACHE_SECONDS`, so a page of many generating containers costs one lookup and at most one
query; a cache that fails is not a reason to fail a page (the query is made each time instead).
"""

from __future__ import annotations

import hashlib
import logging
import math

from django.core.cache import cache
from django.utils.translation import gettext

from page_images.history import Generation

logger = logging.getLogger(__name__)

#: The finished generations an estimate is read from: the newest, so that a change of model or
#: provider shows within a few dozen pictures.
SAMPLE = 50
#: Fewer finished generations than this, and the container says nothing.
MIN_SAMPLES = 5
CACHE_SECONDS = 300


def typical_wait(backend: str, size: str) -> tuple[int, int] | None:
    """The usual duration in seconds, ``(low, high)``, of a job of ``backend`` at ``size``."""
    key = "page_images:typical-wait:" + hashlib.sha256(f"{backend}|{size}".encode()).hexdigest()
    try:
        cached = cache.get(key)
    except Exception:
        logger.warning("page_images: the cache failed; the usual wait is read from the history")
        return _measure(backend, size)
    if cached is not None:
        return (cached[0], cached[1]) if cached else None
    found = _measure(backend, size)
    try:
        cache.set(key, list(found or ()), CACHE_SECONDS)
    except Exception:
        logger.warning("page_images: the cache failed; the usual wait was not kept")
    return found


def _measure(backend: str, size: str) -> tuple[int, int] | None:
    rows = (
        Generation.objects.filter(
            status=Generation.Status.DONE,
            backend=backend,
            size=size,
            started_at__isnull=False,
            finished_at__isnull=False,
        )
        .order_by("-created_at")
        .values_list("started_at", "finished_at")[:SAMPLE]
    )
    seconds = sorted((finished - started).total_seconds() for started, finished in rows)
    if len(seconds) < MIN_SAMPLES:
        return None
    last = len(seconds) - 1
    low, high = seconds[round(0.1 * last)], seconds[round(0.9 * last)]
    # Rounded outwards, to the 5 s an editor reads: "usually 20–40 s", not "17.3–38.9 s".
    return max(1, 5 * math.floor(low / 5)), max(5, 5 * math.ceil(high / 5))


def wait_text(low: int, high: int) -> str:
    """The estimate as the container says it, in the active language."""
    if high < 60:
        if low >= high - 5:
            return gettext("usually about %(seconds)s s") % {"seconds": high}
        return gettext("usually %(low)s–%(high)s s") % {"low": low, "high": high}
    low_minutes = max(1, round(low / 60))
    high_minutes = max(low_minutes, round(high / 60))
    if low_minutes >= high_minutes:
        return gettext("usually about %(minutes)s min") % {"minutes": high_minutes}
    return gettext("usually %(low)s–%(high)s min") % {"low": low_minutes, "high": high_minutes}
