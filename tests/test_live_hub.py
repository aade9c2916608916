"""The hub: one bus listener per process, fanned out to the streams of the records they show."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from page_images.events.base import RESYNC
from page_images.events.memory import InProcessBus
from page_images.live.hub import Hub, Inbox
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
