"""Target 9: our stream beside the streams a Django developer would pick instead, and the floor.

Every contender is one uvicorn worker pinned to CPU 0, started in turn in the same run, following
the same records from the same Redis, driven by the same load process on CPU 1 (the client of
target 2: one stream per tab, ten records per tab). The contenders (benchmarks/peers_site/):

- ``page_images``: ``EventStreams`` in front of Django, as docs/deployment.md advises;
- django-eventstream 5.3 with ``EVENTSTREAM_REDIS``, as its README sets it up;
- Django Channels 4.3 + channels-redis: an ``AsyncHttpConsumer`` joining one group per record,
  under ``RedisChannelLayer`` (documented) and ``RedisPubSubChannelLayer``, and the pub/sub
  layer with the groups joined concurrently (the best configuration found);
- a bare ASGI app, no framework and no check: the floor.

For each, in one server process: 200 streams opened and closed (warm-up); one listener; then
``others`` streams opened: the server's RSS growth per stream; the p99 of an event's trip from
publisher to listener with them connected; then all of them dropped and reopened at once: the
seconds until every one has its first event (``resync``, ``stream-open`` or ``ready``: subscribed).
Events are published as each contender's own sender would: ``PUBLISH`` on our bus's channel (ours
and the floor), ``send_event``'s Redis message (django-eventstream), ``group_send`` (Channels).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from benchmarks.client import Connection, HttpError
from benchmarks.harness import (
    LOAD_CPU,
    Check,
    Row,
    child_env,
    log,
    median,
    percentile,
    run_python,
    uvicorn,
)
from benchmarks.stream import REFS_PER_TAB, SERVER_ARGS, _open_all, rss_kb, say, wait_idle

if TYPE_CHECKING:
    from benchmarks.harness import Services

OURS = "page_images"
FLOOR = "bare ASGI"
LISTENER_REF = "bench.article:999999999"

LOAD = """
import asyncio, json, sys
from benchmarks.peers import scenario
params = json.loads(open(PARAMS).read())
print(json.dumps(asyncio.run(scenario(params))))
"""


@dataclass
class Contender:
    """One server of the comparison: what uvicorn serves, how a tab asks, how an event is sent."""

    name: str
    app: str
    ready: str  # the first event of a stream, sent once it is subscribed
    publish: str  # "bus", "eventstream", "channels-redis" or "channels-pubsub"
    env: dict[str, str] = field(default_factory=dict)
    path: str = "/events/"


PEERS_SETTINGS = {"DJANGO_SETTINGS_MODULE": "benchmarks.peers_site.settings"}
CHANNELS_APP = "benchmarks.peers_site.channels_asgi:application"
TUNED = {"BENCH_CHANNELS_GATHER": "1"}
#: How long a contender may take to subscribe every stream before it is marked as failing.
OPEN_LIMIT = 60.0

CONTENDERS = [
    Contender(OURS, "benchmarks.asgi:application", "resync", "bus", path="/page-images/events/"),
    Contender(
        "django-eventstream",
        "benchmarks.peers_site.eventstream_asgi:application",
        "stream-open",
        "eventstream",
        PEERS_SETTINGS,
    ),
    Contender(
        "Channels, RedisChannelLayer",
        CHANNELS_APP,
        "ready",
        "channels-redis",
        {**PEERS_SETTINGS, "BENCH_CHANNEL_LAYER": "redis", "BENCH_CHANNEL_PREFIX": "redis-doc"},
    ),
    Contender(
        # One connection per group_add in flight: 2,000 consumers joining at once need 2,000.
        # (Joined at once as well, they would need 20,000: more than the Redis server accepts.)
        "Channels, RedisChannelLayer, pool of 4000",
        CHANNELS_APP,
        "ready",
        "channels-redis",
        {
            **PEERS_SETTINGS,
            "BENCH_CHANNEL_LAYER": "redis",
            "BENCH_CHANNEL_POOL": "4000",
            "BENCH_CHANNEL_PREFIX": "redis-pool",
        },
    ),
    Contender(
        "Channels, RedisPubSubChannelLayer",
        CHANNELS_APP,
        "ready",
        "channels-pubsub",
        {**PEERS_SETTINGS, "BENCH_CHANNEL_LAYER": "pubsub", "BENCH_CHANNEL_PREFIX": "pubsub-doc"},
    ),
    Contender(
        "Channels, RedisPubSubChannelLayer, groups joined at once",
        CHANNELS_APP,
        "ready",
        "channels-pubsub",
        {
            **PEERS_SETTINGS,
            **TUNED,
            "BENCH_CHANNEL_LAYER": "pubsub",
            "BENCH_CHANNEL_PREFIX": "pubsub-gather",
        },
    ),
    Contender(
        FLOOR,
        "benchmarks.peers_site.bare_asgi:application",
        "resync",
        "bus",
        {"BENCH_BUS_CHANNEL": "bench:bare"},  # its own: every server is up at once
    ),
]


def tab_references(tab: int) -> list[str]:
    return [f"bench.article:{1_000_000 + tab * REFS_PER_TAB + i}" for i in range(REFS_PER_TAB)]


def stream_query(contender: Contender, references: list[str]) -> str:
    """The query string a page of ``contender`` would put in its ``EventSource`` URL."""
    if contender.name == OURS:
        from page_images.live.tokens import sign_references

        return urlencode({"refs": sign_references(references)})
    if contender.publish == "eventstream":
        return urlencode([("channel", reference) for reference in references])
    return urlencode({"refs": ",".join(references)})


class PeerTab:
    """One tab's stream: ``resynced`` is set on the contender's first event, ``waiters`` are
    futures for a reference's ``changed`` event (the interface ``stream._open_all`` drives)."""

    def __init__(self, port: int, path: str, ready: str) -> None:
        self.port, self.path, self.ready = port, path, ready
        self.stream: Connection | None = None
        self.reader: asyncio.Task[None] | None = None
        self.resynced = asyncio.Event()
        self.lost = False
        self.waiters: dict[str, asyncio.Future[float]] = {}

    async def open(self) -> None:
        self.resynced = asyncio.Event()
        self.lost = False
        self.stream = await Connection.open(self.port)
        await self.stream.start_stream(self.path)
        self.reader = asyncio.get_running_loop().create_task(self._read(self.stream))

    async def _read(self, stream: Connection) -> None:
        try:
            async for event in stream.events():
                if event.name == self.ready:
                    self.resynced.set()
                elif event.name == "changed":
                    waiter = self.waiters.pop(event.data, None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(time.perf_counter())
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            if not self.resynced.is_set():  # the server ended the stream before subscribing it
                self.lost = True
                self.resynced.set()

    def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        if self.stream is not None:
            self.stream.close()


class Publisher:
    """Sends "this record changed" the way each contender's own sender does."""

    def __init__(self, kind: str, redis_url: str, env: dict[str, str]) -> None:
        import redis.asyncio as aioredis

        self.kind = kind
        self.redis = aioredis.Redis.from_url(redis_url)
        self.channel = env.get("BENCH_BUS_CHANNEL", "page_images:events")
        self.layer: Any = None
        prefix = env.get("BENCH_CHANNEL_PREFIX", "asgi")
        if kind == "channels-redis":
            from channels_redis.core import RedisChannelLayer

            self.layer = RedisChannelLayer(hosts=[redis_url], prefix=prefix)
        elif kind == "channels-pubsub":
            from channels_redis.pubsub import RedisPubSubChannelLayer

            self.layer = RedisPubSubChannelLayer(hosts=[redis_url], prefix=prefix)

    async def send(self, reference: str) -> None:
        if self.layer is not None:
            from benchmarks.peers_site import group_name

            await self.layer.group_send(
                group_name(reference), {"type": "changed", "ref": reference}
            )
        elif self.kind == "eventstream":
            # What django_eventstream.send_event publishes when EVENTSTREAM_REDIS is set.
            message = {"channel": reference, "event_type": "changed", "data": reference}
            await self.redis.publish("events_channel", json.dumps({**message, "pub_id": None}))
        else:
            await self.redis.publish(self.channel, reference)

    async def close(self) -> None:
        await self.redis.aclose()
        if self.kind == "channels-pubsub":
            await self.layer.flush()


async def _latency(
    listener: PeerTab, publisher: Publisher, samples: int
) -> tuple[list[float], int]:
    """Seconds from each publish to the listener's event, and how many never came (within 5 s;
    after three the sampling stops: the contender is losing events)."""
    loop = asyncio.get_running_loop()
    out: list[float] = []
    lost = 0
    for _ in range(samples):
        waiter: asyncio.Future[float] = loop.create_future()
        listener.waiters[LISTENER_REF] = waiter
        start = time.perf_counter()
        await publisher.send(LISTENER_REF)
        try:
            out.append(await asyncio.wait_for(waiter, 5.0) - start)
        except TimeoutError:
            lost += 1
            if lost == 3:
                break
        await asyncio.sleep(0.02)
    return out, lost


async def _open_within(tabs: list[PeerTab], parallel: int = 200) -> tuple[float, int]:
    """``stream._open_all`` bounded by :data:`OPEN_LIMIT`: (seconds, streams subscribed)."""
    start = time.perf_counter()
    try:
        await asyncio.wait_for(_open_all(tabs, parallel), OPEN_LIMIT)  # type: ignore[arg-type]
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, HttpError) as exc:
        say(f"opening failed: {type(exc).__name__} {exc}")
    return time.perf_counter() - start, sum(t.resynced.is_set() and not t.lost for t in tabs)


class Side:
    """One contender as the load process sees it: its streams, its listener, its figures."""

    def __init__(self, params: dict[str, Any], redis_url: str) -> None:
        self.name: str = params["name"]
        self.port: int = params["port"]
        self.pid: int = params["pid"]
        self.ready: str = params["ready"]
        self.publisher = Publisher(params["publish"], redis_url, params["env"])
        self.tabs = [PeerTab(self.port, path, self.ready) for path in params["paths"]]
        self.listener = PeerTab(self.port, params["listener_path"], self.ready)
        self.latency: list[float] = []
        self.reconnects: list[float] = []
        self.out: dict[str, Any] = {}

    def fail(self, why: str) -> None:
        say(f"{self.name}: {why}")
        self.out["failed"] = why
        for tab in [*self.tabs, self.listener]:
            tab.close()

    async def prepare(self) -> None:
        """Warm up, open the listener, then every stream: the RSS they add."""
        warm = [PeerTab(self.port, tab.path, self.ready) for tab in self.tabs[:200]]
        _, subscribed = await _open_within(warm)
        for tab in warm:
            tab.close()
        if subscribed < len(warm):
            return self.fail(
                f"{len(warm) - subscribed} of {len(warm)} warm-up streams never subscribed"
            )
        await wait_idle(self.pid)
        await self.listener.open()
        await self.listener.resynced.wait()
        await self.sample(20, keep=False)
        if "failed" in self.out:
            return None
        await wait_idle(self.pid)
        before = rss_kb(self.pid)
        self.out["open_seconds"], subscribed = await _open_within(self.tabs)
        if subscribed < len(self.tabs):
            return self.fail(
                f"{len(self.tabs) - subscribed} of {len(self.tabs)} streams never subscribed"
            )
        await wait_idle(self.pid)
        self.out["kb_per_stream"] = (rss_kb(self.pid) - before) / len(self.tabs)
        say(f"{self.name}: {self.out['kb_per_stream']:.1f} KB per stream")
        return None

    async def sample(self, count: int, keep: bool = True) -> None:
        found, lost = await _latency(self.listener, self.publisher, count)
        if lost:
            ended = self.listener.reader is not None and self.listener.reader.done()
            return self.fail(
                "the server ended the listener's stream"
                if ended
                else f"{lost} of {len(found) + lost} events never arrived"
            )
        if keep:
            self.latency += found
        return None

    async def reconnect(self) -> None:
        """Drop every stream, let the server settle, reopen them all at once."""
        for tab in self.tabs:
            tab.close()
        await wait_idle(self.pid)
        seconds, subscribed = await _open_within(self.tabs, parallel=len(self.tabs))
        if subscribed < len(self.tabs):
            return self.fail(
                f"{len(self.tabs) - subscribed} of {len(self.tabs)} reconnecting streams "
                "never subscribed"
            )
        self.reconnects.append(seconds)
        await wait_idle(self.pid)
        return None

    def figures(self) -> dict[str, Any]:
        if "failed" not in self.out:
            self.out["p99_ms"] = percentile(self.latency, 99) * 1000
            self.out["p50_ms"] = percentile(self.latency, 50) * 1000
            self.out["reconnect_seconds"] = median(self.reconnects)
            self.out["reconnects"] = self.reconnects
        return self.out


async def scenario(params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The load process: every contender prepared in turn, then sampled in alternating rounds.

    Every server is up at once (idle but for the one being measured), so the latency samples (one
    event each in turn) and the reconnections alternate between contenders: a burst of the shared
    machine's load lands on all of them, not on whichever happened to run then.
    """
    sides = [Side(c, params["redis_url"]) for c in params["contenders"]]
    for side in sides:
        await side.prepare()
    for _ in range(params["samples"]):  # one event each in turn: a burst of load hits them all
        for side in sides:
            if "failed" not in side.out:
                await side.sample(1)
    for _ in range(params["reconnect_rounds"]):
        for side in sides:
            if "failed" not in side.out:
                await side.reconnect()
    out = {}
    for side in sides:
        out[side.name] = side.figures()
        if "failed" not in side.out:
            say(
                f"{side.name}: p99 {side.out['p99_ms']:.2f} ms, reconnect "
                + ", ".join(f"{s:.2f}" for s in side.reconnects)
                + " s"
            )
        for tab in [*side.tabs, side.listener]:
            tab.close()
        await side.publisher.close()
    return out


def measure(
    services: Services, streams: int, samples: int, quick: bool, folder: Path
) -> dict[str, dict[str, Any]]:
    """Start every contender as one uvicorn worker on CPU 0 and run :func:`scenario` on CPU 1."""
    params: dict[str, Any] = {
        "contenders": [],
        "redis_url": services.redis_url,
        "samples": samples,
        "reconnect_rounds": 2 if quick else 3,
    }
    with contextlib.ExitStack() as stack:
        for contender in CONTENDERS:
            server = stack.enter_context(
                uvicorn(services, app=contender.app, extra_env=contender.env, args=SERVER_ARGS)
            )
            params["contenders"].append(
                {
                    **asdict(contender),
                    "port": server.port,  # type: ignore[attr-defined]
                    "pid": server.pid,
                    "paths": [
                        f"{contender.path}?{stream_query(contender, tab_references(tab))}"
                        for tab in range(streams)
                    ],
                    "listener_path": f"{contender.path}?{stream_query(contender, [LISTENER_REF])}",
                }
            )
        log(f"9 peers: {len(CONTENDERS)} servers up, {streams} streams each")
        path = folder / "peers-params.json"
        path.write_text(json.dumps(params))
        code = LOAD.replace("PARAMS", repr(str(path)))
        results: dict[str, dict[str, Any]] = run_python(
            code, child_env(services), cpu=LOAD_CPU, timeout=3000
        )
    return results


def best(figures: dict[str, float]) -> tuple[str, float]:
    """The lowest figure among the peers (neither ours nor the floor), and whose it is."""
    peers = {name: value for name, value in figures.items() if name not in (OURS, FLOOR)}
    if not peers:
        return "none ran", math.nan
    name = min(peers, key=peers.__getitem__)
    return name, peers[name]


def listing(results: dict[str, dict[str, Any]], key: str, fmt: str, unit: str) -> str:
    """Every contender's figure, in the order they ran, or why it has none."""

    def one(name: str, r: dict[str, Any]) -> str:
        if "failed" in r:
            return f"{name} failed ({r['failed']})"
        median = f" (p50 {r['p50_ms']:.2f})" if key == "p99_ms" and "p50_ms" in r else ""
        return f"{name} {fmt.format(r[key])} {unit}{median}"

    return "; ".join(one(name, r) for name, r in results.items())


def rows(results: dict[str, dict[str, Any]], streams: int) -> list[Row]:
    """The target's rows from each contender's figures (pure: unit-tested).

    A contender that could not subscribe every stream is named in the notes and left out of the
    comparison: the best peer is the best of those that served the load.
    """

    def figures(key: str) -> dict[str, float]:
        return {name: r[key] for name, r in results.items() if "failed" not in r}

    target = "9 peers"
    out = []
    for key, name, unit, fmt, check in (
        (
            "kb_per_stream",
            f"memory per stream, {streams} open",
            "KB",
            "{:.1f}",
            Check("ratio", "<=", 0.5, "≤ 0.5× best peer", quick=1.5),
        ),
        (
            "p99_ms",
            f"event p99, {streams} others",
            "ms",
            "{:.2f}",
            Check("ratio", "<=", 1.0, "≤ 1× best peer", quick=2.0),
        ),
        (
            "reconnect_seconds",
            f"{streams} streams reconnecting",
            "s",
            "{:.2f}",
            Check("ratio", "<=", 0.5, "≤ 0.5× best peer", quick=1.5),
        ),
    ):
        found = figures(key)
        peer, value = best(found)
        out.append(
            Row(
                target,
                name,
                found.get(OURS, math.nan),
                unit,
                value,
                f"best peer: {peer}",
                check,
                fmt=fmt,
                note=listing(results, key, fmt, unit),
            )
        )
    reconnect = figures("reconnect_seconds")
    out.append(
        Row(
            target,
            f"{streams} streams reconnecting",
            reconnect.get(OURS, math.nan),
            "s",
            reconnect.get(FLOOR, math.nan),
            FLOOR,
            Check("ratio", "<=", 1.3, "≤ 1.3× the floor", quick=1.5),
            fmt="{:.2f}",
        )
    )
    return out


def run(services: Services, quick: bool) -> list[Row]:
    streams = 600 if quick else 2_000
    samples = 150 if quick else 500
    folder = Path(services.media_root).parent
    from benchmarks import fixtures

    fixtures.setup_django()
    return rows(measure(services, streams, samples, quick, folder), streams)
