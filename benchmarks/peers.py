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
        {**PEERS_SETTINGS, "BENCH_CHANNEL_LAYER": "redis"},
    ),
    Contender(
        # One connection per group_add in flight: 2,000 consumers joining at once need 2,000.
        # (Joined at once as well, they would need 20,000: more than the Redis server accepts.)
        "Channels, RedisChannelLayer, pool of 4000",
        CHANNELS_APP,
        "ready",
        "channels-redis",
        {**PEERS_SETTINGS, "BENCH_CHANNEL_LAYER": "redis", "BENCH_CHANNEL_POOL": "4000"},
    ),
    Contender(
        "Channels, RedisPubSubChannelLayer",
        CHANNELS_APP,
        "ready",
        "channels-pubsub",
        {**PEERS_SETTINGS, "BENCH_CHANNEL_LAYER": "pubsub"},
    ),
    Contender(
        "Channels, RedisPubSubChannelLayer, groups joined at once",
        CHANNELS_APP,
        "ready",
        "channels-pubsub",
        {**PEERS_SETTINGS, **TUNED, "BENCH_CHANNEL_LAYER": "pubsub"},
    ),
    Contender(FLOOR, "benchmarks.peers_site.bare_asgi:application", "resync", "bus"),
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

    def __init__(self, kind: str, redis_url: str) -> None:
        import redis.asyncio as aioredis

        self.kind = kind
        self.redis = aioredis.Redis.from_url(redis_url)
        self.layer: Any = None
        if kind == "channels-redis":
            from channels_redis.core import RedisChannelLayer

            self.layer = RedisChannelLayer(hosts=[redis_url])
        elif kind == "channels-pubsub":
            from channels_redis.pubsub import RedisPubSubChannelLayer

            self.layer = RedisPubSubChannelLayer(hosts=[redis_url])

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
            await self.redis.publish("page_images:events", reference)

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


async def scenario(params: dict[str, Any]) -> dict[str, Any]:
    """The load process's part for one contender (see the module's docstring)."""
    port, pid, ready = params["port"], params["pid"], params["ready"]
    paths: list[str] = params["paths"]
    publisher = Publisher(params["publish"], params["redis_url"])
    out: dict[str, Any] = {}

    warm = [PeerTab(port, paths[i], ready) for i in range(min(200, len(paths)))]
    _, subscribed = await _open_within(warm)
    if subscribed < len(warm):
        out["failed"] = f"{len(warm) - subscribed} of {len(warm)} warm-up streams never subscribed"
        return out
    for tab in warm:
        tab.close()
    await wait_idle(pid)

    listener = PeerTab(port, params["listener_path"], ready)
    await listener.open()
    await listener.resynced.wait()
    _, lost = await _latency(listener, publisher, 20)
    if lost:
        out["failed"] = f"{lost} of 20 events to a lone listener never arrived"
        return out
    await wait_idle(pid)

    tabs = [PeerTab(port, path, ready) for path in paths]
    out["rss_before_kb"] = rss_kb(pid)
    out["open_seconds"], subscribed = await _open_within(tabs)
    if subscribed < len(tabs):
        out["failed"] = f"{len(tabs) - subscribed} of {len(tabs)} streams never subscribed"
        return out
    await wait_idle(pid)
    out["rss_after_kb"] = rss_kb(pid)
    out["latency"], lost = await _latency(listener, publisher, params["samples"])
    if lost:
        out["failed"] = f"{lost} of {len(out['latency']) + lost} events never arrived"
        return out
    say(
        f"{params['name']}: {(out['rss_after_kb'] - out['rss_before_kb']) / len(tabs):.1f} KB "
        f"per stream, p99 {percentile(out['latency'], 99) * 1000:.2f} ms"
    )

    for tab in tabs:
        tab.close()
    await wait_idle(pid)
    out["reconnect_seconds"], subscribed = await _open_within(tabs, parallel=len(tabs))
    if subscribed < len(tabs):
        out["failed"] = (
            f"{len(tabs) - subscribed} of {len(tabs)} reconnecting streams never subscribed"
        )
    say(f"{params['name']}: {len(tabs)} streams reconnected in {out['reconnect_seconds']:.2f} s")
    for tab in [*tabs, listener]:
        tab.close()
    await publisher.close()
    return out


def measure(
    contender: Contender, services: Services, streams: int, samples: int, folder: Path
) -> dict[str, Any]:
    """Start ``contender`` as one uvicorn worker and run :func:`scenario` against it."""
    params: dict[str, Any] = {
        **asdict(contender),
        "paths": [
            f"{contender.path}?{stream_query(contender, tab_references(tab))}"
            for tab in range(streams)
        ],
        "listener_path": f"{contender.path}?{stream_query(contender, [LISTENER_REF])}",
        "redis_url": services.redis_url,
        "samples": samples,
    }
    log(f"9 peers: {contender.name}, {streams} streams")
    with uvicorn(services, app=contender.app, extra_env=contender.env, args=SERVER_ARGS) as server:
        params.update(port=server.port, pid=server.pid)  # type: ignore[attr-defined]
        path = folder / "peers-params.json"
        path.write_text(json.dumps(params))
        code = LOAD.replace("PARAMS", repr(str(path)))
        result: dict[str, Any] = run_python(code, child_env(services), cpu=LOAD_CPU, timeout=1200)
    if "failed" not in result:
        result["kb_per_stream"] = (result["rss_after_kb"] - result["rss_before_kb"]) / streams
        result["p99_ms"] = percentile(result["latency"], 99) * 1000
    return result


def best(figures: dict[str, float]) -> tuple[str, float]:
    """The lowest figure among the peers (neither ours nor the floor), and whose it is."""
    peers = {name: value for name, value in figures.items() if name not in (OURS, FLOOR)}
    if not peers:
        return "none ran", math.nan
    name = min(peers, key=peers.__getitem__)
    return name, peers[name]


def listing(results: dict[str, dict[str, Any]], key: str, fmt: str, unit: str) -> str:
    """Every contender's figure, in the order they ran, or why it has none."""
    return "; ".join(
        f"{name} failed ({r['failed']})" if "failed" in r else f"{name} {fmt.format(r[key])} {unit}"
        for name, r in results.items()
    )


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
    results: dict[str, dict[str, Any]] = {}
    for contender in CONTENDERS:
        try:
            results[contender.name] = measure(contender, services, streams, samples, folder)
        except Exception as exc:  # one contender failing must not hide the others' figures
            log(f"9 peers: {contender.name} failed: {type(exc).__name__}: {exc}")
            results[contender.name] = {"failed": f"{type(exc).__name__}: {exc}"}
    return rows(results, streams)
