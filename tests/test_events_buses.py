"""The event buses and the hub, against the real things: threads, processes, files and Redis.

The Redis outage test runs its own redis-server on a free port and SIGKILLs it; the machine's
Redis on 6379 is only ever used with a channel of the test's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

import pytest
import redis

from page_images import events
from page_images.events import check_events, get_bus, notify, publish
from page_images.events.base import RESYNC, EventBus
from page_images.events.files import FileBus
from page_images.events.memory import InProcessBus
from page_images.events.redis import RedisBus
from page_images.live.hub import Hub, get_hub
from tests import machine
from tests.reliability import case
from tests.servers import free_port
from tests.testapp.models import Page

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

TIMEOUT = 5.0


class Listening:
    """Runs ``bus.listen()`` in a task and queues what it yields, as the hub would."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.items: asyncio.Queue[str] = asyncio.Queue()

    async def __aenter__(self) -> Listening:
        self.task = asyncio.create_task(self._run())
        await asyncio.sleep(0)  # let listen() take its first step (register, or note the file end)
        return self

    async def _run(self) -> None:
        async for item in self.bus.listen():
            self.items.put_nowait(item)

    async def __aexit__(self, *exc_info: object) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def get(self, timeout: float = TIMEOUT) -> str:
        return await asyncio.wait_for(self.items.get(), timeout)

    async def nothing_within(self, seconds: float) -> bool:
        await asyncio.sleep(seconds)
        return self.items.empty()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def redis_bus() -> Iterator[Callable[[str], RedisBus]]:
    """RedisBus on a channel of its own, closed at the end as a rebuilt bus is (its pooled
    publisher connection would otherwise be left to the garbage collector, which warns)."""
    made: list[RedisBus] = []

    def make(url: str) -> RedisBus:
        made.append(RedisBus(url=url, channel=unique_channel()))
        return made[-1]

    yield make
    for bus in made:
        bus.close()


# --- InProcessBus ---------------------------------------------------------------------------


def test_in_process_bus_fans_out_to_every_listener():
    bus = InProcessBus()

    async def scenario() -> None:
        async with Listening(bus) as one, Listening(bus) as two:
            bus.publish("testapp.page:1")
            assert await one.get() == "testapp.page:1"
            assert await two.get() == "testapp.page:1"

    run(scenario())


def test_in_process_bus_delivers_a_publish_from_another_thread_promptly():
    bus = InProcessBus()

    async def scenario() -> float:
        async with Listening(bus) as listening:
            started = time.monotonic()
            thread = threading.Thread(target=bus.publish, args=("testapp.page:2",))
            thread.start()
            # The loop is asleep in queue.get(): only call_soon_threadsafe wakes it.
            assert await listening.get(timeout=1.0) == "testapp.page:2"
            thread.join()
            return time.monotonic() - started

    assert run(scenario()) < 1.0


def test_in_process_bus_forgets_listeners_that_stopped():
    bus = InProcessBus()

    async def scenario() -> None:
        async with Listening(bus):
            assert len(bus._listeners) == 1
        assert len(bus._listeners) == 0

    run(scenario())
    bus.publish("testapp.page:3")  # no listener, no loop: nothing to do, nothing raised


def test_in_process_bus_drops_a_listener_whose_loop_closed_without_it(caplog):
    # A loop closed by hand, without finishing its async generators (asyncio.run would), leaves
    # its listener registered; or a publish from another thread races the loop's end. Either
    # way that listener can never run again: the next publish forgets it, and the others still
    # get the event.
    bus = InProcessBus()
    loop = asyncio.new_event_loop()
    abandoned = bus.listen()

    async def take_one() -> str:
        waiting = asyncio.ensure_future(abandoned.__anext__())
        await asyncio.sleep(0)
        bus.publish("testapp.page:0")
        return await waiting

    assert loop.run_until_complete(take_one()) == "testapp.page:0"
    loop.close()  # with `abandoned` still suspended at its yield, and so still registered

    async def scenario() -> None:
        async with Listening(bus) as live:
            assert len(bus._listeners) == 2
            bus.publish("testapp.page:1")
            assert await live.get() == "testapp.page:1"
            assert len(bus._listeners) == 1

    with caplog.at_level(logging.ERROR):
        run(scenario())
    assert caplog.records == []


# --- RedisBus against the machine's Redis -----------------------------------------------------


def unique_channel() -> str:
    return f"page_images_test_{uuid.uuid4().hex[:12]}"


async def wait_subscribed(url: str, channel_name: str, timeout: float = TIMEOUT) -> None:
    """Until the server itself counts a subscriber: publishing earlier would be lost."""
    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(redis.ConnectionError):
                if dict(client.pubsub_numsub(channel_name)).get(channel_name.encode()):
                    return
            if time.monotonic() > deadline:
                pytest.fail(f"no subscriber on {channel_name} after {timeout}s", pytrace=False)
            await asyncio.sleep(0.02)
    finally:
        client.close()


@pytest.mark.redis
def test_redis_bus_carries_publish_to_listen_across_clients(redis_bus):
    url = machine.redis_url()
    listener_bus = redis_bus(url)
    channel = listener_bus.channel
    # A second instance publishes, as a Celery worker process would with its own bus.
    publisher_bus = redis_bus(url)
    publisher_bus.channel = channel
    other_site = redis_bus(url)

    async def scenario() -> None:
        async with Listening(listener_bus) as listening:
            await wait_subscribed(url, f"{channel}:events")
            assert await listening.get() == RESYNC  # subscribed: what came before is re-read
            await asyncio.to_thread(other_site.publish, "testapp.page:99")
            await asyncio.to_thread(publisher_bus.publish, "testapp.page:1")
            assert await listening.get() == "testapp.page:1"  # not the other channel's, not RESYNC
            await asyncio.to_thread(publisher_bus.publish, "testapp.page:2")
            assert await listening.get() == "testapp.page:2"

    run(scenario())


def test_redis_bus_publish_with_no_server_logs_and_returns_quickly(caplog, redis_bus):
    bus = redis_bus(f"redis://127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="page_images.events"):
        bus.publish("testapp.page:1")
    assert time.monotonic() - started < 1.0
    assert "could not publish testapp.page:1" in caplog.text


@case(
    "events",
    "Redis killed and restarted under the bus's listener",
    "Publishing while down is logged in under a second, never raised; the listener reconnects "
    "within 3 s and tells every stream to resync.",
)
@pytest.mark.redis
def test_redis_bus_survives_an_outage_and_resyncs(own_redis, caplog, redis_bus):
    bus = redis_bus(own_redis.url)
    timings: dict[str, float] = {}

    async def scenario() -> None:
        async with Listening(bus) as listening:
            await wait_subscribed(own_redis.url, bus.channel_name)
            assert await listening.get() == RESYNC
            await asyncio.to_thread(bus.publish, "testapp.page:1")
            assert await listening.get() == "testapp.page:1"

            own_redis.kill()
            started = time.monotonic()
            await asyncio.to_thread(bus.publish, "testapp.page:lost")  # logged, not raised
            timings["publish_while_down"] = time.monotonic() - started
            await asyncio.sleep(0.5)  # the listener notices and backs off

            own_redis.start()
            restarted = time.monotonic()
            assert await listening.get(timeout=10) == RESYNC
            timings["reconnect_after_restart"] = time.monotonic() - restarted

            await asyncio.to_thread(bus.publish, "testapp.page:2")
            assert await listening.get() == "testapp.page:2"
            assert await listening.nothing_within(0.1)  # the lost event never turns up

    with caplog.at_level(logging.WARNING, logger="page_images.events"):
        run(scenario())
    print(f"redis outage: {timings}")
    assert "could not publish testapp.page:lost" in caplog.text
    assert "lost Redis channel" in caplog.text
    assert timings["publish_while_down"] < 1.0
    assert timings["reconnect_after_restart"] < 3.0  # back-off is capped at 2 s


@case(
    "events",
    "Redis stops answering without closing the connection (SIGSTOP)",
    "The listener's ping times out, it reconnects and resyncs.",
)
@pytest.mark.redis
def test_redis_bus_notices_a_server_that_stops_answering(own_redis, caplog, redis_bus):
    bus = redis_bus(own_redis.url)
    bus.read_timeout, bus.ping_after, bus.pong_timeout = 0.05, 0.3, 0.3

    async def scenario() -> None:
        async with Listening(bus) as listening:
            await wait_subscribed(own_redis.url, bus.channel_name)
            assert await listening.get() == RESYNC
            # Idle past ping_after: a live server's pong keeps the subscription as it is.
            assert await listening.nothing_within(1.0)
            own_redis.freeze(True)
            await asyncio.sleep(1.0)  # silent for longer than ping_after + pong_timeout
            own_redis.freeze(False)
            assert await listening.get(timeout=10) == RESYNC
            await asyncio.to_thread(bus.publish, "testapp.page:1")
            assert await listening.get() == "testapp.page:1"

    with caplog.at_level(logging.WARNING, logger="page_images.events"):
        run(scenario())
    assert "no answer from Redis" in caplog.text


@pytest.mark.redis
def test_a_closed_redis_bus_lets_go_of_its_connection_and_publishes_again_on_demand():
    import gc
    import warnings

    bus = RedisBus(url=machine.redis_url(), channel=unique_channel())
    bus.close()  # nothing opened yet: nothing to do
    watcher = redis.Redis.from_url(machine.redis_url(), socket_timeout=2)
    try:
        pubsub = watcher.pubsub()
        pubsub.subscribe(bus.channel_name)
        assert pubsub.get_message(timeout=2)["type"] == "subscribe"
        for reference in ("testapp.page:1", "testapp.page:2"):
            # What earlier tests of this process left for the collector is theirs, not the bus's.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                gc.collect()
            bus.publish(reference)
            assert pubsub.get_message(timeout=2)["data"] == reference.encode()
            bus.close()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ResourceWarning)
                gc.collect()
            unclosed = [str(w.message) for w in caught if "unclosed" in str(w.message)]
            assert unclosed == []
        pubsub.close()
    finally:
        watcher.close()


# --- FileBus --------------------------------------------------------------------------------

PUBLISH_SCRIPT = """
import sys
from page_images.events.files import FileBus
for reference in sys.argv[2:]:
    FileBus(sys.argv[1]).publish(reference)
"""


def publish_from_another_process(path: str, *references: str) -> None:
    subprocess.run(
        [sys.executable, "-c", PUBLISH_SCRIPT, path, *references], check=True, timeout=30
    )


@pytest.mark.process
def test_file_bus_crosses_processes_from_the_end_of_the_file(tmp_path):
    path = str(tmp_path / "bus")  # missing: created by whoever comes first
    bus = FileBus(path)
    bus.publish("testapp.page:old")  # before listening began: not replayed

    async def scenario() -> None:
        async with Listening(bus) as listening:
            await asyncio.to_thread(
                publish_from_another_process, path, "testapp.page:1", "testapp.page:2"
            )
            assert await listening.get() == "testapp.page:1"
            assert await listening.get() == "testapp.page:2"
            assert await listening.nothing_within(0.3)

    run(scenario())


def test_file_bus_creates_its_folder_when_listening_first(tmp_path):
    path = tmp_path / "not" / "yet"

    async def scenario() -> None:
        async with Listening(FileBus(str(path))) as listening:
            assert path.is_dir()
            FileBus(str(path)).publish("testapp.page:1")
            assert await listening.get() == "testapp.page:1"

    run(scenario())


@pytest.mark.process
def test_file_bus_rotation_makes_listeners_resync(tmp_path):
    bus = FileBus(str(tmp_path))
    log = tmp_path / "events.log"
    padding = b'{"ref": "testapp.page:padding"}\n'
    log.write_bytes(padding * (FileBus.max_bytes // len(padding) + 1))  # just past 1 MiB

    async def scenario() -> None:
        async with Listening(bus) as listening:
            await asyncio.to_thread(publish_from_another_process, str(tmp_path), "testapp.page:1")
            assert await listening.get() == RESYNC
            assert await listening.get() == "testapp.page:1"  # read from the new file's start
            await asyncio.to_thread(bus.publish, "testapp.page:2")
            assert await listening.get() == "testapp.page:2"
            assert await listening.nothing_within(0.3)

    run(scenario())
    assert (tmp_path / "events.log.1").stat().st_size > FileBus.max_bytes
    assert log.stat().st_size < 100


def test_file_bus_resyncs_when_the_file_is_moved_aside_and_not_yet_recreated(tmp_path):
    # Between a publisher's rotation (os.replace) and its write, there is no file at all: what was
    # appended to the old one since the last poll may be lost, so the listener resyncs, then reads
    # the new file from its start. A publisher of this process rotates the same way.
    bus = FileBus(str(tmp_path))
    log = tmp_path / "events.log"
    bus.publish("testapp.page:0")

    async def scenario() -> None:
        async with Listening(bus) as listening:
            os.replace(log, tmp_path / "events.log.1")
            assert await listening.get() == RESYNC
            assert await listening.nothing_within(0.2)  # once, however long the gap
            bus.max_bytes = 1
            bus.publish("testapp.page:1")
            assert await listening.get() == "testapp.page:1"
            bus.publish("testapp.page:2")  # the file is full again: this one rotates it
            assert await listening.get() == RESYNC
            assert await listening.get() == "testapp.page:2"

    run(scenario())
    assert (tmp_path / "events.log.1").read_bytes() == b'{"ref": "testapp.page:1"}\n'


def test_file_bus_resyncs_when_the_file_shrinks_and_waits_for_whole_lines(tmp_path):
    bus = FileBus(str(tmp_path))
    log = tmp_path / "events.log"
    bus.publish("testapp.page:0")

    async def scenario() -> None:
        async with Listening(bus) as listening:
            with open(log, "ab") as file:
                file.write(b'{"ref": "testapp.page:1"')  # half a line: not yet an event
            assert await listening.nothing_within(0.3)
            with open(log, "ab") as file:
                file.write(b"}\n")
            assert await listening.get() == "testapp.page:1"
            os.truncate(log, 0)
            assert await listening.get() == RESYNC
            bus.publish("testapp.page:2")
            assert await listening.get() == "testapp.page:2"

    run(scenario())


# --- get_bus, publish, notify, get_hub, checks ----------------------------------------------


def test_get_bus_is_cached_and_rebuilt_when_the_setting_changes(settings):
    first = get_bus()
    assert isinstance(first, InProcessBus)
    assert get_bus() is first
    settings.PAGE_IMAGES = {
        **settings.PAGE_IMAGES,
        "EVENTS": {"BACKEND": "page_images.events.files.FileBus", "OPTIONS": {"path": "/tmp/x"}},
    }
    assert isinstance(get_bus(), FileBus)
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "EVENTS": None}
    assert get_bus() is None
    publish("testapp.page:1")  # no bus: a no-op


@case(
    "events",
    "A broken EVENTS setting at publish time",
    "Logged; the job still stores its picture.",
)
def test_publish_never_raises_even_with_a_broken_setting(settings, caplog):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "EVENTS": {"BACKEND": "no.such.Bus"}}
    with caplog.at_level(logging.ERROR, logger="page_images.events"):
        publish("testapp.page:1")
    assert "could not publish testapp.page:1" in caplog.text


def test_notify_publishes_the_records_reference():
    bus = get_bus()
    assert isinstance(bus, InProcessBus)

    async def scenario() -> None:
        async with Listening(bus) as listening:
            notify(Page(pk=42))
            assert await listening.get() == "testapp.page:42"

    run(scenario())


def test_get_hub_is_one_per_event_loop_and_reset_with_the_setting(settings):
    async def hubs() -> tuple[Hub, Hub]:
        return get_hub(), get_hub()

    first, again = run(hubs())
    assert first is again
    other, _ = run(hubs())
    assert other is not first  # another loop, another hub
    assert other.bus is get_bus()


def test_checks_name_the_key_to_fix(tmp_path):
    def ids(config: Any) -> list[str]:
        return [message.id or "" for message in check_events(config)]

    assert ids(None) == []
    assert ids({"BACKEND": "page_images.events.memory.InProcessBus"}) == []
    assert ids({"BACKEND": "no.such.Bus"}) == ["page_images.E040"]
    assert ids({"BACKEND": "page_images.events.memory.InProcessBus", "OPTIONS": {"x": 1}}) == [
        "page_images.E040"
    ]
    assert ids("redis") == ["page_images.E040"]
    redis_bus = "page_images.events.redis.RedisBus"
    assert ids({"BACKEND": redis_bus, "OPTIONS": {"url": "http://x", "channel": ""}}) == [
        "page_images.E041",
        "page_images.E043",
    ]
    file_bus = "page_images.events.files.FileBus"
    assert ids({"BACKEND": file_bus, "OPTIONS": {"path": "relative/folder"}}) == [
        "page_images.W040"
    ]
    (tmp_path / "a-file").write_text("")
    assert ids({"BACKEND": file_bus, "OPTIONS": {"path": str(tmp_path / "a-file")}}) == [
        "page_images.E044"
    ]
    assert ids({"BACKEND": file_bus, "OPTIONS": {"path": str(tmp_path)}}) == []
    assert events.RESYNC == RESYNC


# --- Configuration and malformed input (branch `tiers`: coverage gaps) --------------------------


def test_bus_options_must_be_a_dict():
    from page_images.events import build_bus
    from page_images.exceptions import PageImagesConfigurationError

    config = {"BACKEND": "page_images.events.memory.InProcessBus", "OPTIONS": ["url"]}
    with pytest.raises(PageImagesConfigurationError, match=r"\['OPTIONS'\] must be a dict"):
        build_bus(config)


def test_file_bus_check_refuses_an_empty_path_and_a_file(tmp_path):
    a_file = tmp_path / "events.log"
    a_file.write_text("")
    for path in ("", str(a_file)):
        assert [m.id for m in FileBus(path).check()] == ["page_images.E044"]
    assert FileBus(str(tmp_path)).check() == []


def test_file_bus_skips_malformed_lines(tmp_path):
    bus = FileBus(str(tmp_path))
    bus.publish("testapp.page:0")

    async def scenario() -> None:
        async with Listening(bus) as listening:
            with open(tmp_path / "events.log", "ab") as file:
                file.write(b'not json\n{"no": "ref"}\n[1]\n{"ref": 7}\n')
            bus.publish("testapp.page:1")
            assert await listening.get() == "testapp.page:1"
            assert await listening.nothing_within(0.2)

    run(scenario())


def test_file_bus_publish_to_a_folder_it_cannot_write_logs_and_returns(tmp_path, caplog):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the folder should be")
    with caplog.at_level(logging.WARNING, logger="page_images.events"):
        FileBus(str(blocked)).publish("testapp.page:1")
    assert "could not publish testapp.page:1" in caplog.text


class ScriptedRedis:
    """Stands in for ``redis.asyncio.Redis``: confirms the subscription, then answers with
    ``messages`` and, once they run out, silence (not even a pong), as a black-holed link does."""

    def __init__(self, *messages: dict[str, Any]) -> None:
        self.messages = [{"type": "subscribe", "data": 1}, *messages]
        self.pings = 0
        self.closed = False

    def pubsub(self) -> ScriptedRedis:
        return self

    async def subscribe(self, channel: str) -> None:
        self.channel = channel

    async def get_message(self, timeout: float) -> dict[str, Any] | None:
        if self.messages:
            return self.messages.pop(0)
        await asyncio.sleep(timeout)
        return None

    async def ping(self) -> None:
        self.pings += 1

    async def aclose(self) -> None:
        self.closed = True


def test_redis_bus_pings_a_silent_link_once_then_reconnects_and_resyncs(monkeypatch, caplog):
    # The logic behind the SIGSTOP test above, without a server: silence past ping_after costs one
    # ping; no answer within pong_timeout either, and the link is dropped, reopened, and every
    # stream told to resync.
    import redis.asyncio

    silent = ScriptedRedis()
    healthy = ScriptedRedis({"type": "message", "data": b"testapp.page:1"})
    connections = iter([silent, healthy])
    monkeypatch.setattr(redis.asyncio.Redis, "from_url", lambda *args, **kwargs: next(connections))
    bus = RedisBus(url="redis://127.0.0.1:6379/0", channel="page_images_test")
    bus.read_timeout, bus.ping_after, bus.pong_timeout = 0.02, 0.1, 0.1

    async def scenario() -> None:
        async with Listening(bus) as listening:
            assert await listening.get() == RESYNC  # the first subscription
            assert await listening.get() == RESYNC  # the second, after the silent link
            assert await listening.get() == "testapp.page:1"

    with caplog.at_level(logging.WARNING, logger="page_images.events"):
        run(scenario())
    assert (silent.channel, silent.pings, silent.closed) == ("page_images_test:events", 1, True)
    assert "no answer from Redis" in caplog.text


def test_redis_bus_resyncs_once_its_first_subscription_is_confirmed(monkeypatch):
    # A fresh web process's first tabs open their streams (and re-read their containers) while
    # the hub's SUBSCRIBE is still in flight: an event published in that window reaches nobody,
    # so the confirmation itself tells them to read again, before any event it carries.
    import redis.asyncio

    scripted = ScriptedRedis({"type": "message", "data": b"testapp.page:1"})
    monkeypatch.setattr(redis.asyncio.Redis, "from_url", lambda *args, **kwargs: scripted)
    bus = RedisBus(url="redis://127.0.0.1:6379/0", channel="page_images_test")

    async def scenario() -> list[str]:
        async with Listening(bus) as listening:
            return [await listening.get(), await listening.get()]

    assert run(scenario()) == [RESYNC, "testapp.page:1"]


def test_redis_bus_without_the_redis_package_names_the_extra(monkeypatch):
    from django.utils import translation

    from page_images.exceptions import MissingDependencyError

    monkeypatch.setitem(sys.modules, "redis", None)  # as if the redis extra were not installed
    bus = RedisBus(url="redis://127.0.0.1:6379/0", channel=unique_channel())
    assert "page_images.E042" in [message.id for message in bus.check()]
    with translation.override("de"):
        german = {message.id: message.msg for message in bus.check()}
    assert german["page_images.E042"] == (
        'redis ist nicht installiert. Installieren mit: pip install "django-page-images[redis]"'
    )
    with pytest.raises(MissingDependencyError, match="redis"):
        bus.publish("testapp.page:1")
