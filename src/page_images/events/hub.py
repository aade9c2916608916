"""One upstream subscription per process, fanned out to the connected streams.

Measured on this design's load test: one bus listener per process feeding an asyncio queue per
client held 10,000 clients in one uvicorn worker at ~57 KB each, where one pub/sub connection per
client cost 1.6x the memory and 2-3x the latency. So a stream never listens to the bus itself; it
subscribes to the hub of its event loop for the references its page shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import TYPE_CHECKING

from page_images.events.base import RESYNC
from page_images.exceptions import PageImagesConfigurationError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Collection

    from page_images.events.base import EventBus

__all__ = ["Hub", "get_hub", "reset_hubs"]

logger = logging.getLogger("page_images.events")

_hubs: dict[asyncio.AbstractEventLoop, Hub] = {}
_hubs_lock = threading.Lock()


class Hub:
    """Dispatches each event to the queues subscribed to its reference, and RESYNC to all."""

    #: Events a slow client may have waiting; past that it gets RESYNC instead (see _offer).
    queue_size: int = 100
    #: Back-off before restarting a bus listener that failed: first, and cap (seconds).
    restart_first: float = 0.1
    restart_cap: float = 2.0

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        # reference -> queues, so that an event costs O(its subscribers), not O(all clients).
        self._by_reference: dict[str, set[asyncio.Queue[str]]] = {}
        self._subscriptions: dict[asyncio.Queue[str], frozenset[str]] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    @contextlib.asynccontextmanager
    async def subscription(self, references: Collection[str]) -> AsyncIterator[asyncio.Queue[str]]:
        """A queue that receives each matching reference, and RESYNC; removed on any exit."""
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=self.queue_size)
        wanted = frozenset(references)
        try:
            self._subscriptions[queue] = wanted
            for reference in wanted:
                self._by_reference.setdefault(reference, set()).add(queue)
            if self._start_listener():
                # Let the listener take its first step (in-process and file buses register
                # there), so that an event published as soon as the stream opens is not missed.
                await asyncio.sleep(0)
            yield queue
        finally:
            self._unsubscribe(queue)

    def _unsubscribe(self, queue: asyncio.Queue[str]) -> None:
        for reference in self._subscriptions.pop(queue, frozenset()):
            queues = self._by_reference.get(reference)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._by_reference[reference]

    def _start_listener(self) -> bool:
        if self._task is not None and not self._task.done():
            return False
        self._task = asyncio.get_running_loop().create_task(
            self._listen(), name="page_images event hub"
        )
        return True

    async def _listen(self) -> None:
        """Run the bus listener forever; if it ever fails, restart it and resync everyone.

        Buses reconnect by themselves; this is the guard against the unexpected (a bug, a full
        disk), which would otherwise leave every stream of the process open and deaf.
        """
        delay = self.restart_first
        while True:
            events = self.bus.listen()
            try:
                async for reference in events:
                    self.dispatch(reference)
                    delay = self.restart_first
                logger.error("page_images: the event bus listener ended; restarting it")
            except Exception:
                logger.exception("page_images: the event bus listener failed; restarting it")
            finally:
                aclose = getattr(events, "aclose", None)
                if aclose is not None:
                    await aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.restart_cap)
            self.dispatch(RESYNC)

    def dispatch(self, reference: str) -> None:
        """Hand ``reference`` to its subscribers (RESYNC goes to every subscriber)."""
        if reference == RESYNC:
            queues: Collection[asyncio.Queue[str]] = list(self._subscriptions)
        else:
            queues = self._by_reference.get(reference, ())
        for queue in queues:
            _offer(queue, reference)

    def close(self) -> None:
        """Stop the listener (settings changed: the bus it listens to is no longer the one)."""
        if self._task is not None:
            self._task.cancel()


def _offer(queue: asyncio.Queue[str], reference: str) -> None:
    """Queue ``reference``; if the client is too slow to keep up, replace its backlog by RESYNC.

    A resync makes the browser re-read every record it shows, so the events waiting in a full
    queue say nothing more; dropping them keeps a stuck tab from holding memory, and dropping one
    without a resync would leave its spinner turning.
    """
    try:
        queue.put_nowait(reference)
    except asyncio.QueueFull:
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(RESYNC)


def get_hub() -> Hub:
    """The hub of the running event loop, created with the configured bus on first use."""
    from page_images.events import get_bus

    loop = asyncio.get_running_loop()
    with _hubs_lock:
        hub = _hubs.get(loop)
        if hub is None:
            bus = get_bus()
            if bus is None:
                raise PageImagesConfigurationError(
                    "PAGE_IMAGES['EVENTS'] is None: there is no event bus to listen to."
                )
            for closed in [other for other in _hubs if other.is_closed()]:
                del _hubs[closed]
            hub = _hubs[loop] = Hub(bus)
        return hub


def reset_hubs() -> None:
    """Forget every hub and stop its listener, from any thread (its loop may be another's)."""
    with _hubs_lock:
        hubs = list(_hubs.items())
        _hubs.clear()
    for loop, hub in hubs:
        with contextlib.suppress(RuntimeError):  # a closed loop has no tasks left to stop
            loop.call_soon_threadsafe(hub.close)
