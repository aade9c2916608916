"""The Redis bus: publish from any worker, one pub/sub subscription per web process.

Two failure modes shaped it. First, a Redis outage must not fail a job: the picture is already
stored, so publish() logs a warning and returns, within bounded socket timeouts. Second, the
listener must come back by itself, and must *say* it came back: events published while it was
away are gone (pub/sub keeps nothing), so after every subscription (the first as well) it yields
RESYNC. redis-py's own retry would reconnect and re-subscribe silently, hiding exactly that gap, so
the listener's client is built with no retries and every error surfaces here.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from django.core.checks import Error
from django.utils.translation import gettext

from page_images.events.base import RESYNC, EventBus
from page_images.exceptions import MissingDependencyError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from django.core.checks import CheckMessage
    from redis import Redis

__all__ = ["RedisBus"]

logger = logging.getLogger("page_images.events")

#: Seconds a connect or a command may take before publish() gives up (and logs).
SOCKET_TIMEOUT = 2.0
#: Back-off between reconnection attempts of the listener: doubling from the first to the cap.
BACKOFF_FIRST = 0.1
BACKOFF_CAP = 2.0
_SCHEMES = ("redis", "rediss", "unix")


def _require_redis() -> None:
    try:
        import redis  # noqa: F401
    except ImportError as exc:  # the redis extra is optional: say which one to install
        raise MissingDependencyError("redis", "redis") from exc


class RedisBus(EventBus):
    """Publishes on ``<channel>:events``; every web process listens with one subscription."""

    supports_cross_process = True
    #: How long the listener waits for a message before checking the connection is alive.
    read_timeout: float = 1.0
    #: Silence after which the listener pings, and after which a missing pong means a dead link:
    #: a black-holed connection (no FIN, no RST) would otherwise leave the stream deaf forever.
    ping_after: float = 10.0
    pong_timeout: float = 5.0

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", channel: str = "page_images") -> None:
        super().__init__(url=url, channel=channel)
        self.url = url
        self.channel = channel
        self._client: Redis | None = None
        self._client_lock = threading.Lock()

    @property
    def channel_name(self) -> str:
        """Namespaced, so one Redis can serve several sites and other users."""
        return f"{self.channel}:events"

    def _publisher(self) -> Redis:
        with self._client_lock:
            if self._client is None:
                _require_redis()
                import redis
                from redis.backoff import NoBackoff
                from redis.retry import Retry

                # One immediate retry (a pooled socket that died with a restart is replaced),
                # no more: a worker must not spend seconds per publish on a Redis that is down.
                self._client = redis.Redis.from_url(
                    self.url,
                    socket_timeout=SOCKET_TIMEOUT,
                    socket_connect_timeout=SOCKET_TIMEOUT,
                    retry=Retry(NoBackoff(), 1),
                )
            return self._client

    def close(self) -> None:
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def publish(self, reference: str) -> None:
        _require_redis()
        import redis

        try:
            self._publisher().publish(self.channel_name, reference)
        except (redis.RedisError, OSError) as exc:
            logger.warning(
                "page_images: could not publish %s on Redis channel %s: %s",
                reference,
                self.channel_name,
                exc,
            )

    async def listen(self) -> AsyncIterator[str]:
        _require_redis()
        import redis
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        errors = (redis.ConnectionError, redis.TimeoutError, OSError, asyncio.TimeoutError)
        delay = BACKOFF_FIRST
        missed = False  # True once any event may have gone by unseen
        while True:
            client = aioredis.Redis.from_url(
                self.url,
                socket_timeout=SOCKET_TIMEOUT,
                socket_connect_timeout=SOCKET_TIMEOUT,
                retry=Retry(NoBackoff(), 0),
            )
            pubsub = client.pubsub()
            liveness = _Liveness(self.ping_after, self.pong_timeout)
            try:
                await pubsub.subscribe(self.channel_name)
                while True:
                    message = await pubsub.get_message(timeout=self.read_timeout)
                    if message is None:
                        if liveness.should_ping():
                            await pubsub.ping()
                        continue
                    liveness.heard()
                    if message["type"] == "message":
                        yield _text(message["data"])
                    elif message["type"] == "subscribe":
                        # The server has the subscription: only now is a resync truthful, since
                        # a publish between sending SUBSCRIBE and this would still be missed.
                        # The first subscription too: the streams that opened while it was in
                        # flight (a fresh worker's first tabs) re-read on a promise that was not
                        # yet kept.
                        delay = BACKOFF_FIRST
                        if missed:
                            logger.info("page_images: re-subscribed to %s", self.channel_name)
                        yield RESYNC
            except errors as exc:
                logger.warning(
                    "page_images: lost Redis channel %s (%s); reconnecting in %.1f s",
                    self.channel_name,
                    exc or type(exc).__name__,
                    delay,
                )
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # typed from redis 8.2
                await client.aclose()
            missed = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_CAP)

    def check(self) -> list[CheckMessage]:
        messages: list[CheckMessage] = []
        scheme = urlsplit(str(self.url)).scheme
        if not isinstance(self.url, str) or scheme not in _SCHEMES:
            messages.append(
                Error(
                    gettext("PAGE_IMAGES['EVENTS']['OPTIONS']['url'] = %(url)s is not a Redis URL.")
                    % {"url": repr(self.url)},
                    hint=gettext("Use redis://host:port/db, rediss://… or unix://…"),
                    id="page_images.E041",
                )
            )
        if not isinstance(self.channel, str) or not self.channel.strip():
            messages.append(
                Error(
                    gettext(
                        "PAGE_IMAGES['EVENTS']['OPTIONS']['channel'] must be a non-empty string, "
                        "not %(value)s."
                    )
                    % {"value": repr(self.channel)},
                    id="page_images.E043",
                )
            )
        try:
            _require_redis()
        except MissingDependencyError as exc:
            messages.append(Error(exc.translated(), id="page_images.E042"))
        return messages


def _text(data: object) -> str:
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)


class _Liveness:
    """Notices a link that died without a word (no FIN, no RST: a black-holed network).

    Pub/sub reads wait forever by design, so silence alone proves nothing: after ``ping_after``
    seconds of it, ping; if even the pong does not come within ``pong_timeout``, the link is dead.
    """

    def __init__(self, ping_after: float, pong_timeout: float) -> None:
        self.ping_after = ping_after
        self.pong_timeout = pong_timeout
        self._loop = asyncio.get_running_loop()
        self._heard = self._loop.time()
        self._pinged = False

    def heard(self) -> None:
        self._heard = self._loop.time()
        self._pinged = False

    def should_ping(self) -> bool:
        silence = self._loop.time() - self._heard
        if silence > self.ping_after + self.pong_timeout:
            raise TimeoutError(f"no answer from Redis for {silence:.0f} s")
        if silence > self.ping_after and not self._pinged:
            self._pinged = True
            return True
        return False
