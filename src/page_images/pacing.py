"""Pacing at the provider's limit: one budget per model, shared by every worker through Redis.

A backfill of thousands of records runs into the provider's rate limit. Left to themselves, the
workers would each call until answered 429 and retry with back-off: the provider is hammered,
the retries are paid for in time, and "the job will try again" errors pile up. Instead every job
*books its call* before it makes it: one Lua script, atomic on Redis, gives the job the earliest
moment at which its call keeps the model under ``RATE_LIMITS`` (requests and pictures per
window), and records that moment as taken. The job sleeps a short wait out, and hands a longer one
back to the queue with the booked moment in its payload (:attr:`ImageJob.slot
<page_images.jobs.ImageJob>`), so a worker thread never idles for minutes.

Bookings are spaced evenly (``window / limit`` apart, a little more: :attr:`Limit.margin`), never
in a burst: N calls booked in one instant would reach the provider spread over however long the
workers' CPUs take to send them, and a burst whose tail arrives late meets the next burst's head in
one window. Evenly spaced, a call may be late by up to the margin and still be inside the limit; a
job whose booking came later than half the margin (a busy worker) books again.

A 429 that says ``Retry-After`` pauses the model for every worker (:func:`pause`): the bookings
start after it. Redis unreachable: the job goes ahead unpaced, with a logged warning (fail open);
pacing must never be the reason a picture is not made.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from page_images.conf import app_settings
from page_images.loading import Configured

if TYPE_CHECKING:
    from redis import Redis

logger = logging.getLogger("page_images.pacing")

#: The keys of one model's entry in ``RATE_LIMITS``.
LIMIT_KEYS = ("requests_per_minute", "images_per_minute", "window")
#: What "per minute" means, in seconds; a test may shrink it with the ``window`` key.
MINUTE = 60.0
#: Seconds Redis may take to answer before the job goes ahead unpaced.
SOCKET_TIMEOUT = 2.0

# KEYS: the model's bookings (a sorted set: member "id:pictures", score the booked moment on
# Redis's clock) and its pause-until. ARGV: the window (with its margin), the request limit and
# the picture limit (0: none), this call's pictures, the longest wait the job accepts, an id.
# Returns {wait, booked (1/0), the booked moment}, numbers as text (Lua numbers would be cut to
# integers on the way out).
_BOOK = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local window = tonumber(ARGV[1])
local requests = tonumber(ARGV[2])
local images = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local at = now
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > at then at = paused end
local last = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if last[2] then
  local previous = tonumber(last[2])
  local weight = tonumber(string.match(last[1], ':(%d+)$'))
  if previous > at then at = previous end
  if requests > 0 and previous + window / requests > at then at = previous + window / requests end
  if images > 0 and previous + window * weight / images > at then
    at = previous + window * weight / images
  end
end
if requests > 0 then
  local nth = redis.call('ZREVRANGE', KEYS[1], requests - 1, requests - 1, 'WITHSCORES')
  if nth[2] and tonumber(nth[2]) + window > at then at = tonumber(nth[2]) + window end
end
if images > 0 then
  local recent = redis.call('ZREVRANGE', KEYS[1], 0, images - 1, 'WITHSCORES')
  local sum = n
  for i = 1, #recent, 2 do
    sum = sum + tonumber(string.match(recent[i], ':(%d+)$'))
    if sum > images then
      if tonumber(recent[i + 1]) + window > at then at = tonumber(recent[i + 1]) + window end
      break
    end
  end
end
if at - now > tonumber(ARGV[5]) then
  return {tostring(at - now), 0, tostring(at)}
end
redis.call('ZADD', KEYS[1], at, ARGV[6] .. ':' .. n)
redis.call('PEXPIRE', KEYS[1], math.ceil((at - now + window) * 1000))
return {tostring(at - now), 1, tostring(at)}
"""

# KEYS: the pause-until. ARGV: seconds. Only ever moves the pause later.
_PAUSE = """
local clock = redis.call('TIME')
local until_ = tonumber(clock[1]) + tonumber(clock[2]) / 1000000 + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ > current then
  redis.call('SET', KEYS[1], tostring(until_), 'PX', math.ceil(tonumber(ARGV[1]) * 1000))
end
return tostring(until_)
"""


@dataclass(frozen=True)
class Limit:
    """One model's budget: calls and pictures per ``window`` seconds (None: not limited)."""

    requests: int | None
    images: int | None
    window: float = MINUTE

    @property
    def margin(self) -> float:
        """Seconds added to the window: the lateness a call may have and still be in budget."""
        return max(1.0, 0.03 * self.window)


@dataclass(frozen=True)
class Booking:
    """The moment booked for one call, on Redis's clock; ``wait`` is how far off it was."""

    wait: float
    at: float
    booked: bool = True


def limit_for(model: str) -> Limit | None:
    """The budget ``RATE_LIMITS`` gives ``model``; None when it is not paced."""
    entry = app_settings.RATE_LIMITS.get(model)
    if not entry:
        return None
    return Limit(
        requests=entry.get("requests_per_minute"),
        images=entry.get("images_per_minute"),
        window=float(entry.get("window", MINUTE)),
    )


def redis_url() -> str | None:
    """``PACING_REDIS_URL``, or else the Redis the event bus uses (itself derived from a Redis
    broker by ``EVENTS = "auto"``); None when there is no Redis to share a budget through."""
    if app_settings.PACING_REDIS_URL:
        return app_settings.PACING_REDIS_URL
    from page_images.events import REDIS, resolve

    config = resolve(app_settings.EVENTS)
    if isinstance(config, dict) and config.get("BACKEND") == REDIS:
        url = (config.get("OPTIONS") or {}).get("url")
        return url if isinstance(url, str) else None
    return None


class Budgets:
    """The Redis client and the two scripts, built once per process (see :class:`Configured`)."""

    def __init__(self, url: str) -> None:
        import redis

        self.url = url
        self.client: Redis = redis.Redis.from_url(
            url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT
        )
        self._book = self.client.register_script(_BOOK)
        self._pause = self.client.register_script(_PAUSE)

    def close(self) -> None:
        self.client.close()
        self.client.connection_pool.disconnect()

    def book(self, model: str, limit: Limit, pictures: int, max_wait: float) -> Booking:
        answer = self._book(
            keys=_keys(model),
            args=[
                limit.window + limit.margin,
                limit.requests or 0,
                limit.images or 0,
                pictures,
                max_wait,
                uuid.uuid4().hex,
            ],
        )
        wait, booked, at = answer
        return Booking(float(wait), float(at), booked == 1)

    def now(self) -> float:
        seconds, micros = self.client.time()
        return seconds + micros / 1_000_000

    def pause(self, model: str, seconds: float) -> None:
        self._pause(keys=_keys(model)[1:], args=[seconds])


def _keys(model: str) -> list[str]:
    # One hash tag per model: both keys live on one Redis Cluster slot, as a script needs.
    return [f"page_images:pacing:{{{model}}}:calls", f"page_images:pacing:{{{model}}}:pause"]


def _build() -> Budgets | None:
    if not app_settings.RATE_LIMITS:
        return None
    url = redis_url()
    return Budgets(url) if url else None


_budgets: Configured[Budgets | None] = Configured(_build)


def budgets() -> Budgets | None:
    """This process's budgets; None when nothing is paced (no limits, or no Redis: check E101)."""
    return _budgets.get()


def close() -> None:
    """Close this process's Redis connections (a test's teardown; a worker's shutdown)."""
    _budgets.reset()


def book(model: str, pictures: int, slot: float | None) -> Booking | None:
    """When the call for ``pictures`` pictures of ``model`` may go out; None: at once, unpaced.

    ``slot`` is a moment booked by an earlier attempt of the job: kept when it is still ahead or
    only just past (within half the margin), booked again when the job came back too late to use
    it. A wait longer than ``PACING_MAX_WAIT`` is returned unbooked: the job gives up.
    """
    limit = limit_for(model)
    if limit is None:
        return None
    try:
        found = budgets()
        if found is None:
            return None
        if slot is not None:
            now = found.now()
            if now - slot <= limit.margin / 2:
                return Booking(max(0.0, slot - now), slot)
        return found.book(model, limit, pictures, app_settings.PACING_MAX_WAIT)
    except Exception as exc:  # Redis down, or not the Redis the URL says: fail open
        logger.warning("page_images: pacing of %s is off for this call: %s", model, exc)
        return None


def pause(model: str, seconds: float) -> None:
    """No call to ``model`` from any worker for ``seconds`` (the provider's ``Retry-After``)."""
    if limit_for(model) is None or seconds <= 0:
        return
    try:
        found = budgets()
        if found is not None:
            found.pause(model, seconds)
    except Exception as exc:
        logger.warning("page_images: could not pause %s for %.0f s: %s", model, seconds, exc)


__all__ = ["Booking", "Limit", "book", "budgets", "close", "limit_for", "pause", "redis_url"]
