"""One upstream subscription per process, fanned out to the connected streams.

Measured on this design's load test: one bus listener per process feeding an asyncio queue per
client held 10,000 clients in one uvicorn worker at ~57 KB each, where one pub/sub connection per
client cost 1.6x the memory and 2-3x the latency. So a stream never listens to the bus itself; it
subscribes to the hub of its event loop for the references its page shows.

A process may hold ten thousand idle subscriptions, so each one is kept small (docs/benchmarks.md,
target 2): an :class:`Inbox` rather than an ``asyncio.Queue`` (three deques and an event, ~3 KB,
where one list and one future do), the reference index pointing at the inbox itself while a record
has one subscriber (a set only from the second), and a waiting stream holding a timer handle, not a
task, for its keep-alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import TYPE_CHECKING, Union

from django.core.signals import setting_changed
from django.dispatch import receiver

from page_images.conf import SETTING_NAME
from page_images.events import get_bus
from page_images.events.base import RESYNC
from page_images.exceptions import PageImagesConfigurationError

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable
    from types import TracebackType

    from page_images.events.base import EventBus

__all__ = ["Hub", "Inbox", "get_hub", "reset_hubs"]

logger = logging.getLogger("page_images.events")

_hubs: dict[asyncio.AbstractEventLoop, Hub] = {}
_hubs_lock = threading.Lock()


class Inbox:
    """A bounded FIFO of references for one consumer: the part of ``asyncio.Queue`` a stream uses.

    ``put_nowait`` raises ``asyncio.QueueFull`` past ``maxsize``, as a queue does. One coroutine
    reads it at a time (the stream that owns it); a second concurrent reader is refused.
    """

    __slots__ = ("_items", "_waiter", "maxsize")

    def __init__(self, maxsize: int = 0) -> None:
        self.maxsize = maxsize
        self._items: list[str] = []
        self._waiter: asyncio.Future[None] | None = None

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._items)

    def put_nowait(self, item: str) -> None:
        if self.full():
            raise asyncio.QueueFull
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def get_nowait(self) -> str:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.pop(0)

    async def wait(self, timeout: float) -> str | None:
        """The next item, or None if none came within ``timeout`` seconds."""
        if not self._items:
            await self._wait(timeout)
        return self._items.pop(0) if self._items else None

    def wake(self) -> None:
        """End the reader's current wait now, as a timeout would (it gets None)."""
        _wake(self._waiter)

    async def _wait(self, timeout: float) -> None:
        if self._waiter is not None:
            raise RuntimeError("an Inbox has one reader at a time")
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout, _wake, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            timer.cancel()


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


#: What the reference index holds: the one inbox that wants a reference, or a set of them.
_Subscribers = Union[Inbox, "set[Inbox]"]


class _Subscription:
    """``async with hub.subscription(references) as inbox``: subscribed inside, removed on exit."""

    __slots__ = ("hub", "inbox", "owner", "references")

    def __init__(self, hub: Hub, references: tuple[str, ...], owner: str) -> None:
        self.hub = hub
        self.references = references
        self.owner = owner
        self.inbox = Inbox(maxsize=hub.queue_size)

    async def __aenter__(self) -> Inbox:
        self.hub._subscribe(self.inbox, self.references, self.owner)
        if self.hub._start_listener():
            # Let the listener take its first step (in-process and file buses register
            # there), so that an event published as soon as the stream opens is not missed.
            await asyncio.sleep(0)
        return self.inbox

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.hub._unsubscribe(self.inbox, self.owner)


class Hub:
    """Dispatches each event to the inboxes subscribed to its reference, and RESYNC to all."""

    #: Events a slow client may have waiting; past that it gets RESYNC instead (see _offer).
    queue_size: int = 100
    #: Back-off before restarting a bus listener that failed: first, and cap (seconds).
    restart_first: float = 0.1
    restart_cap: float = 2.0

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        # reference -> inbox(es), so that an event costs O(its subscribers), not O(all clients).
        self._by_reference: dict[str, _Subscribers] = {}
        self._subscriptions: dict[Inbox, tuple[str, ...]] = {}
        # owner (a session's stream binding) -> its open streams, for STREAMS_PER_SESSION.
        self._by_owner: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def subscriber_count(self) -> int:
        """Streams subscribed now."""
        return len(self._subscriptions)

    @property
    def reference_count(self) -> int:
        """References with at least one subscriber: what the hub's index holds."""
        return len(self._by_reference)

    def streams_of(self, owner: str) -> int:
        """Streams open now for ``owner`` (a session's binding; ``""`` is nobody's)."""
        return self._by_owner.get(owner, 0)

    def subscription(self, references: Iterable[str], owner: str = "") -> _Subscription:
        """An inbox that receives each matching reference, and RESYNC; removed on any exit."""
        return _Subscription(self, tuple(dict.fromkeys(references)), owner)

    def _subscribe(self, inbox: Inbox, references: tuple[str, ...], owner: str = "") -> None:
        if owner:
            self._by_owner[owner] = self._by_owner.get(owner, 0) + 1
        self._subscriptions[inbox] = references
        index = self._by_reference
        for reference in references:
            current = index.get(reference)
            if current is None:
                index[reference] = inbox
            elif isinstance(current, set):
                current.add(inbox)
            else:
                index[reference] = {current, inbox}

    def _unsubscribe(self, inbox: Inbox, owner: str = "") -> None:
        if owner and inbox in self._subscriptions:
            left = self._by_owner[owner] - 1
            if left:
                self._by_owner[owner] = left
            else:
                del self._by_owner[owner]
        index = self._by_reference
        for reference in self._subscriptions.pop(inbox, ()):
            # Each of the inbox's references is indexed: by the inbox itself while it is the
            # record's only subscriber, else by a set of two or more that holds it.
            current = index[reference]
            if isinstance(current, set):
                current.discard(inbox)
                if len(current) == 1:
                    index[reference] = current.pop()
            else:
                del index[reference]

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
        inboxes: Collection[Inbox]
        if reference == RESYNC:
            inboxes = list(self._subscriptions)
        else:
            found = self._by_reference.get(reference)
            if found is None:
                return
            inboxes = (found,) if isinstance(found, Inbox) else list(found)
        for inbox in inboxes:
            _offer(inbox, reference)

    def close(self) -> None:
        """Stop the listener (settings changed: the bus it listens to is no longer the one)."""
        if self._task is not None:
            self._task.cancel()


def _offer(queue: Inbox, reference: str) -> None:
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


@receiver(setting_changed)
def _reset_on_change(*, setting: str, **kwargs: object) -> None:
    if setting == SETTING_NAME:  # the bus the hubs listen to is no longer the configured one
        reset_hubs()
