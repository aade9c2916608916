"""The hub: one bus listener per process, fanned out to the streams of the records they show."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import pytest

from page_images.events.base import RESYNC
from page_images.events.memory import InProcessBus
from page_images.exceptions import PageImagesConfigurationError
from page_images.live.hub import Hub, Inbox, get_hub
from tests.reliability import case

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

TIMEOUT = 5.0


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def get(inbox: Inbox, timeout: float = TIMEOUT) -> str:
    reference = await inbox.wait(timeout)
    assert reference is not None, f"nothing arrived within {timeout} s"
    return reference


def test_hub_gives_each_subscription_only_its_references():
    bus = InProcessBus()
    hub = Hub(bus)

    async def scenario() -> None:
        async with (
            hub.subscription(["testapp.page:1"]) as first,
            hub.subscription(["testapp.page:2", "testapp.page:3"]) as second,
            hub.subscription(["testapp.page:1"]) as third,
        ):
            assert hub.subscriber_count == 3
            for reference in ["testapp.page:1", "testapp.page:3", "testapp.page:9"]:
                bus.publish(reference)
            assert await get(first) == "testapp.page:1"
            assert await get(third) == "testapp.page:1"
            assert await get(second) == "testapp.page:3"
            await asyncio.sleep(0.05)
            assert [q.qsize() for q in (first, second, third)] == [0, 0, 0]
            hub.dispatch(RESYNC)  # what a bus yields after an outage goes to everyone
            assert [await get(q) for q in (first, second, third)] == [RESYNC] * 3
        assert hub.subscriber_count == 0
        assert hub.reference_count == 0

    run(scenario())


def test_hub_replaces_a_full_backlog_by_resync():
    bus = InProcessBus()
    hub = Hub(bus)

    async def scenario() -> None:
        async with hub.subscription(["testapp.page:1"]) as slow:
            for _ in range(hub.queue_size):
                bus.publish("testapp.page:1")
            while not slow.full():
                await asyncio.sleep(0.01)
            bus.publish("testapp.page:1")  # one too many
            while slow.full():
                await asyncio.sleep(0.01)
            assert slow.get_nowait() == RESYNC
            assert slow.empty()
            bus.publish("testapp.page:1")  # and it keeps working afterwards
            assert await get(slow) == "testapp.page:1"

    run(scenario())


def test_hub_removes_a_cancelled_subscription():
    hub = Hub(InProcessBus())

    async def scenario() -> None:
        inside = asyncio.Event()

        async def client() -> None:
            async with hub.subscription(["testapp.page:1"]):
                inside.set()
                await asyncio.sleep(3600)

        task = asyncio.create_task(client())
        await inside.wait()
        assert hub.subscriber_count == 1
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert hub.subscriber_count == 0

    run(scenario())


class FailingOnceBus(InProcessBus):
    """An in-process bus whose first listen() dies, as a buggy third-party bus might."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    async def listen(self) -> AsyncIterator[str]:
        self.attempts += 1
        if self.attempts == 1:
            raise RuntimeError("the bus broke")
        async for reference in super().listen():
            yield reference


@case(
    "events",
    "The bus listener crashes inside the web process",
    "Restarted; every stream is told to resync.",
)
def test_hub_restarts_a_failed_listener_and_resyncs(caplog):
    bus = FailingOnceBus()
    hub = Hub(bus)

    async def scenario() -> None:
        async with hub.subscription(["testapp.page:1"]) as queue:
            assert await get(queue) == RESYNC  # after the restart: events may have been missed
            bus.publish("testapp.page:1")
            assert await get(queue) == "testapp.page:1"

    with caplog.at_level(logging.ERROR, logger="page_images.events"):
        run(scenario())
    assert "the event bus listener failed" in caplog.text


# --- The inbox's edges, listeners that end, hubs never used (branch `coverage`) ------------------


def test_an_inbox_refuses_what_a_queue_refuses():
    inbox = Inbox(maxsize=1)

    async def scenario() -> None:
        with pytest.raises(asyncio.QueueEmpty):
            inbox.get_nowait()
        reader = asyncio.ensure_future(inbox.wait(TIMEOUT))
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="one reader at a time"):
            await inbox.wait(TIMEOUT)
        inbox.put_nowait("testapp.page:1")
        with pytest.raises(asyncio.QueueFull):
            inbox.put_nowait("testapp.page:2")
        assert await reader == "testapp.page:1"

    run(scenario())


def test_an_item_arriving_with_the_timeout_is_returned_and_breaks_nothing():
    # The keep-alive timer and a publish fire in the same turn of the loop: the item wins, and the
    # timer finds its reader woken already instead of waking it twice.
    inbox = Inbox()
    errors: list[dict[str, Any]] = []

    async def scenario() -> str | None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: errors.append(context))
        loop.call_soon(inbox.put_nowait, "testapp.page:1")  # runs first, in the timer's turn
        return await inbox.wait(0)

    assert run(scenario()) == "testapp.page:1"
    assert errors == []


def test_waking_an_inbox_ends_its_wait_as_a_timeout_would():
    # The ASGI front wakes a stream's inbox when the client leaves; with no reader waiting (the
    # stream was writing a frame) the wake is a no-op and the next wait is an ordinary one.
    inbox = Inbox()

    async def scenario() -> tuple[str | None, float, str | None]:
        inbox.wake()
        loop = asyncio.get_running_loop()
        reader = asyncio.ensure_future(inbox.wait(60))
        await asyncio.sleep(0)
        started = loop.time()
        inbox.wake()
        woken = await reader
        inbox.put_nowait("testapp.page:1")
        return woken, loop.time() - started, await inbox.wait(60)

    woken, waited, item = run(scenario())
    assert woken is None
    assert waited < 1
    assert item == "testapp.page:1"


def test_a_reference_with_three_subscribers_keeps_the_other_two():
    hub = Hub(InProcessBus())

    async def scenario() -> None:
        async with hub.subscription(["testapp.page:1"]) as first:
            async with hub.subscription(["testapp.page:1"]), hub.subscription(["testapp.page:1"]):
                assert hub.reference_count == 1
            assert hub.reference_count == 1
            hub.dispatch("testapp.page:1")
            assert await get(first) == "testapp.page:1"
        assert hub.reference_count == 0

    run(scenario())


class EndingOnceBus(InProcessBus):
    """A bus whose first listen() is a plain async iterator (no ``aclose``) that simply ends."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    def listen(self) -> AsyncIterator[str]:
        self.attempts += 1
        if self.attempts == 1:
            return _Ended()
        return super().listen()


class _Ended:
    def __aiter__(self) -> _Ended:
        return self

    async def __anext__(self) -> str:
        raise StopAsyncIteration


def test_hub_restarts_a_listener_that_ended_and_resyncs(caplog):
    # EventBus.listen() is only an async iterator: one that ends, or has nothing to close, is
    # restarted all the same, and every stream is told it may have missed something.
    bus = EndingOnceBus()
    hub = Hub(bus)

    async def scenario() -> None:
        async with hub.subscription(["testapp.page:1"]) as queue:
            assert await get(queue) == RESYNC
            bus.publish("testapp.page:1")
            assert await get(queue) == "testapp.page:1"

    with caplog.at_level(logging.ERROR, logger="page_images.events"):
        run(scenario())
    assert "the event bus listener ended; restarting it" in caplog.text
    assert bus.attempts == 2


def test_a_hub_never_subscribed_to_closes_quietly():
    # reset_hubs() closes every hub of the process, including one only asked for its counts.
    hub = Hub(InProcessBus())
    hub.close()
    assert hub.subscriber_count == 0


def test_get_hub_without_a_bus_says_which_setting(settings):
    settings.PAGE_IMAGES = {"EVENTS": None}

    async def ask() -> Hub:
        return get_hub()

    with pytest.raises(PageImagesConfigurationError, match=r"PAGE_IMAGES\['EVENTS'\] is None"):
        run(ask())
