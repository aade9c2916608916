"""The in-process bus: no server, no file, one process only (tests, a one-process dev server).

Its publishers are often not on the listener's event loop: a Celery worker thread, a request
thread under ``sync_to_async``, a test's own thread. ``asyncio.Queue`` is not thread-safe, and a
``put_nowait`` from the wrong thread can leave the loop asleep with the item queued; hence every
delivery goes through ``loop.call_soon_threadsafe``, which also wakes the loop.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

from page_images.events.base import EventBus

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["InProcessBus"]

_Listener = tuple[asyncio.AbstractEventLoop, "asyncio.Queue[str]"]


class InProcessBus(EventBus):
    """Fans each publish out to every :meth:`listen` running in this process, on any loop."""

    supports_cross_process = False

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._listeners: set[_Listener] = set()

    def publish(self, reference: str) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for loop, queue in listeners:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, reference)
            except RuntimeError:
                # The loop is closed: its listener can never run again, so stop feeding it.
                with self._lock:
                    self._listeners.discard((loop, queue))

    async def listen(self) -> AsyncIterator[str]:
        # Unbounded on purpose: the consumer is the hub, which only dispatches, and a bound here
        # would have to drop events without a way to say so.
        queue: asyncio.Queue[str] = asyncio.Queue()
        listener = (asyncio.get_running_loop(), queue)
        with self._lock:
            self._listeners.add(listener)
        try:
            while True:
                yield await queue.get()
        finally:
            with self._lock:
                self._listeners.discard(listener)
