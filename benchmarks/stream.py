"""Target 2: the live refresh at scale, on one uvicorn worker.

The measured process is one uvicorn worker (pinned to CPU 0) serving the benchmark site with the
Redis bus, the stream answered by ``page_images.asgi.EventStreams`` in front of Django as
docs/deployment.md advises (the reconnection baseline, plain requests, goes through Django).
Everything else runs in one load process pinned to CPU 1: the simulated tabs (each an
``EventSource``-like client holding one stream for the ten records its page shows), a publisher
that stands in for the Celery workers (``PUBLISH`` on the bus's channel, as ``RedisBus.publish``
does), and the clocks. The load process reads the server's RSS from ``/proc/<pid>/status`` between
phases, so no coordination with the orchestrator is needed. In order:

1. latency of one event to its listener with no other client (the baseline), then
2. 10,000 streams opened: the server's RSS growth per stream; the baseline is a second, fresh
   worker holding 10,000 idle keep-alive connections after one plain request each;
3. 8,000 of them closed: the latency again, with 2,000 others connected;
4. the 2,000 tabs for a while, each seeing one generation a minute (two events: started, done;
   each makes the tab re-fetch that container, as htmx does): the requests per minute they cost;
   polling at 500 ms is measured on a few tabs the server can keep up with, and scaled to 2,000;
5. the 2,000 streams dropped and reopened at once: the time until every one has its ``resync``;
   the baseline is 2,000 new connections making one plain request each, at once.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import fixtures
from benchmarks.client import Connection, build_request
from benchmarks.harness import (
    LOAD_CPU,
    Check,
    Row,
    child_env,
    cpu_seconds,
    log,
    percentile,
    run_python,
    uvicorn,
)

if TYPE_CHECKING:
    from benchmarks.harness import Services

REFS_PER_TAB = 10
CHANNEL = "page_images:events"
SERVER_ARGS = ["--timeout-keep-alive", "3600"]

LOAD = """
import asyncio, json, sys
from benchmarks.stream import FUNCTION
params = json.loads(open(PARAMS).read())
print(json.dumps(asyncio.run(FUNCTION(params))))
"""


def say(message: str) -> None:
    print(f"    {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Tab:
    """One simulated browser tab: a stream, and a second connection for its re-fetches."""

    def __init__(self, port: int, token: str, fragments: dict[str, str] | None = None) -> None:
        self.port = port
        self.token = token
        self.fragments = fragments or {}
        self.stream: Connection | None = None
        self.fetcher: Connection | None = None
        self.resynced = asyncio.Event()
        self.waiters: dict[str, asyncio.Future[float]] = {}
        self.requests = 0
        self.fetching = False
        self.fetch_lock: asyncio.Lock | None = None
        self.reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.resynced = asyncio.Event()
        self.stream = await Connection.open(self.port)
        await self.stream.start_stream(f"/page-images/events/?refs={self.token}")
        self.requests += 1
        self.reader = asyncio.get_running_loop().create_task(self._read(self.stream))

    async def _read(self, stream: Connection) -> None:
        try:
            async for event in stream.events():
                if event.name == "resync":
                    self.resynced.set()
                elif event.name == "changed":
                    waiter = self.waiters.pop(event.data, None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(time.perf_counter())
                    if self.fetching and event.data in self.fragments:
                        asyncio.get_running_loop().create_task(self._fetch(event.data))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass

    async def _fetch(self, reference: str) -> None:
        # One connection for a tab's re-fetches, one request at a time on it (HTTP/1.1).
        if self.fetch_lock is None:
            self.fetch_lock = asyncio.Lock()
        async with self.fetch_lock:
            if self.fetcher is None or self.fetcher.closed:
                self.fetcher = await Connection.open(self.port)
            self.requests += 1
            answer = await self.fetcher.request(
                "GET", f"/page-images/fragment/?ref={self.fragments[reference]}"
            )
        if answer.status != 200:
            raise RuntimeError(f"fragment answered {answer.status}")

    def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        for connection in (self.stream, self.fetcher):
            if connection is not None:
                connection.close()


async def _open_all(tabs: list[Tab], parallel: int = 200) -> float:
    """Open every tab's stream (``parallel`` connects in flight); seconds until all resynced."""
    gate = asyncio.Semaphore(parallel)
    start = time.perf_counter()

    async def one(tab: Tab) -> None:
        async with gate:
            for attempt in range(5):
                try:
                    await tab.open()
                    break
                except (OSError, asyncio.IncompleteReadError):
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.2 * (attempt + 1))
            await tab.resynced.wait()

    await asyncio.gather(*(one(tab) for tab in tabs))
    return time.perf_counter() - start


async def _latency(
    listener: Tab, publisher: Any, reference: str, samples: int, timeout: float = 5.0
) -> list[float]:
    loop = asyncio.get_running_loop()
    out: list[float] = []
    for _ in range(samples):
        waiter: asyncio.Future[float] = loop.create_future()
        listener.waiters[reference] = waiter
        start = time.perf_counter()
        await publisher.publish(CHANNEL, reference)
        arrived = await asyncio.wait_for(waiter, timeout)
        out.append(arrived - start)
        await asyncio.sleep(0.02)
    return out


async def wait_idle(pid: int, limit: float = 120.0) -> float:
    """Wait until the server has been idle (< 5 % of a CPU) for a second; the seconds waited.

    Opening or closing thousands of streams leaves the server work to finish (Django's
    ``request_finished`` for every closed stream, say); an event measured meanwhile would be
    measuring that queue, not the stream.
    """
    start = time.perf_counter()
    quiet = 0
    while time.perf_counter() - start < limit:
        before = cpu_seconds(pid)
        await asyncio.sleep(0.5)
        quiet = quiet + 1 if cpu_seconds(pid) - before < 0.025 else 0
        if quiet >= 2:
            break
    return time.perf_counter() - start


async def scenario(params: dict[str, Any]) -> dict[str, Any]:
    import redis.asyncio as aioredis

    port, pid = params["port"], params["pid"]
    tokens: list[str] = params["tokens"]
    fragments: list[dict[str, str]] = params["fragments"]
    publisher = aioredis.Redis.from_url(params["redis_url"])
    out: dict[str, Any] = {}

    warm = [Tab(port, tokens[i]) for i in range(200)]
    await _open_all(warm)
    for tab in warm:
        tab.close()
    await wait_idle(pid)

    listener = Tab(port, params["listener_token"])
    await listener.open()
    await listener.resynced.wait()
    reference = params["listener_ref"]
    await _latency(listener, publisher, reference, 20)
    out["latency_alone"] = await _latency(listener, publisher, reference, params["samples"])
    say(f"latency alone: p99 {percentile(out['latency_alone'], 99) * 1000:.1f} ms")

    # The 2,000 tabs: latency with them connected, their requests, their reconnection.
    before = rss_kb(pid)
    others = params["others"]
    tabs = [Tab(port, tokens[i], fragments[i]) for i in range(others)]
    await _open_all(tabs)
    await wait_idle(pid)
    out["latency_with_others"] = await _latency(listener, publisher, reference, params["samples"])
    say(
        f"latency with {others} others: p99 "
        f"{percentile(out['latency_with_others'], 99) * 1000:.1f} ms"
    )

    # Each tab sees one generation a minute: two events, each re-fetching one container.
    for tab in tabs:
        tab.fetching = True
        tab.requests = 0
    window = params["window"]
    events = [ref for tab in tabs for ref in random.sample(sorted(tab.fragments), 2)]
    random.shuffle(events)
    count = int(len(events) * window / 60)
    gap = window / max(count, 1)
    start = time.perf_counter()
    for i, ref in enumerate(events[:count]):
        await publisher.publish(CHANNEL, ref)
        delay = start + (i + 1) * gap - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    await asyncio.sleep(1)
    out["stream_window"] = time.perf_counter() - start
    out["stream_requests"] = sum(tab.requests for tab in tabs)
    out["events_published"] = count
    say(f"{count} events in {out['stream_window']:.0f} s: {out['stream_requests']} requests")

    # All of them drop at once and come back at once.
    for tab in tabs:
        tab.fetching = False
        tab.close()
    await wait_idle(pid)
    out["reconnect_seconds"] = await _open_all(tabs, parallel=len(tabs))
    say(f"{others} streams reconnected and resynced in {out['reconnect_seconds']:.1f} s")
    await wait_idle(pid)

    # Up to 10,000 streams: the memory they hold.
    more = [Tab(port, tokens[i]) for i in range(others, params["streams"])]
    out["open_seconds"] = await _open_all(more)
    await wait_idle(pid)
    out["rss_before_kb"], out["rss_after_kb"] = before, rss_kb(pid)
    out["streams"] = len(tabs) + len(more)
    say(
        f"{out['streams']} streams open (the last {len(more)} in {out['open_seconds']:.1f} s), "
        f"RSS {before} → {out['rss_after_kb']} KB"
    )
    closing = time.perf_counter()
    for tab in (*tabs, *more, listener):
        tab.close()
    await wait_idle(pid)
    out["close_seconds"] = time.perf_counter() - closing

    # Baseline of the reconnection: as many new connections, one plain request each, at once.
    async def plain() -> None:
        connection = await Connection.open(port)
        await connection.request("GET", "/hello/")
        connection.close()

    begin = time.perf_counter()
    await asyncio.gather(*(plain() for _ in range(others)))
    out["plain_seconds"] = time.perf_counter() - begin
    await wait_idle(pid)

    out["polling"] = await _poll(port, params["poll_refs"], params["poll_seconds"])
    await publisher.aclose()
    return out


async def _poll(port: int, refs: list[str], seconds: float) -> dict[str, float]:
    """Tabs polling one fragment every 500 ms (as ``every 500ms``: a fixed period)."""
    served = 0
    latencies: list[float] = []

    async def tab(ref: str) -> None:
        nonlocal served
        connection = await Connection.open(port)
        raw = build_request("GET", f"/page-images/fragment/?ref={ref}", port)
        start = time.perf_counter()
        due = start + random.random() * 0.5
        while True:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            if time.perf_counter() - start > seconds:
                break
            sent = time.perf_counter()
            answer = await connection.send(raw)
            latencies.append(time.perf_counter() - sent)
            if answer.status != 200:
                raise RuntimeError(f"fragment answered {answer.status}")
            served += 1
            due += 0.5
        connection.close()

    began = time.perf_counter()
    await asyncio.gather(*(tab(ref) for ref in refs))
    elapsed = time.perf_counter() - began
    return {
        "tabs": len(refs),
        "served": served,
        "seconds": elapsed,
        "per_tab_per_minute": served / len(refs) / elapsed * 60,
        "p99_ms": percentile(latencies, 99) * 1000,
    }


async def idle_connections(params: dict[str, Any]) -> dict[str, Any]:
    """The memory baseline: ``count`` keep-alive connections idle after one plain request."""
    port, pid, count = params["port"], params["pid"], params["streams"]
    warm = [await Connection.open(port) for _ in range(200)]
    for connection in warm:
        await connection.request("GET", "/hello/")
        connection.close()
    await asyncio.sleep(1)
    before = rss_kb(pid)
    gate = asyncio.Semaphore(200)
    held: list[Connection] = []

    async def one() -> None:
        async with gate:
            connection = await Connection.open(port)
            await connection.request("GET", "/hello/")
            held.append(connection)

    await asyncio.gather(*(one() for _ in range(count)))
    await asyncio.sleep(2)
    after = rss_kb(pid)
    for connection in held:
        connection.close()
    return {"rss_before_kb": before, "rss_after_kb": after, "connections": len(held)}


def _load(function: str, params: dict[str, Any], services: Services, folder: Path) -> Any:
    path = folder / f"stream-{function}.json"
    path.write_text(json.dumps(params))
    code = LOAD.replace("FUNCTION", function).replace("PARAMS", repr(str(path)))
    return run_python(code, child_env(services), cpu=LOAD_CPU, timeout=1200)


def run(services: Services, quick: bool) -> list[Row]:
    # The quick mode (CI) holds 2,500 streams with 700 busy tabs: the same code paths and
    # per-stream figures, in about a quarter of the time (the machine's two cores open and close
    # every one of them).
    streams, others = (2_500, 700) if quick else (10_000, 2_000)
    import resource

    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if limit < streams + 2_000:
        raise RuntimeError(
            f"the open-file limit is {limit}: {streams} streams need {streams + 2_000} "
            "(raise the hard limit, `ulimit -Hn`, for the user that runs the benchmarks)"
        )
    window = 10.0 if quick else 60.0
    samples = 150 if quick else 1000
    folder = Path(services.media_root).parent
    fixtures.setup_django()
    from page_images.live.tokens import sign_references

    log(f"2 stream: {others * REFS_PER_TAB} records for {others} tabs that re-fetch")
    pks = fixtures.articles(others * REFS_PER_TAB, prefix="stream")
    signed = fixtures.signed_refs(pks)
    references = fixtures.references(pks)
    fragments = [
        dict(zip(references[i : i + REFS_PER_TAB], signed[i : i + REFS_PER_TAB], strict=True))
        for i in range(0, len(pks), REFS_PER_TAB)
    ]
    tokens = []
    for tab in range(streams):
        refs = (
            references[tab * REFS_PER_TAB : (tab + 1) * REFS_PER_TAB]
            if tab < others
            else [
                f"bench.article:{10_000_000 + tab * REFS_PER_TAB + i}" for i in range(REFS_PER_TAB)
            ]
        )
        tokens.append(sign_references(refs))
    listener_ref = "bench.article:999999999"
    params: dict[str, Any] = {
        "tokens": tokens,
        "fragments": fragments,
        "listener_token": sign_references([listener_ref]),
        "listener_ref": listener_ref,
        "redis_url": services.redis_url,
        "streams": streams,
        "others": others,
        "samples": samples,
        "window": window,
        "poll_refs": signed[:40],
        "poll_seconds": 6.0 if quick else 20.0,
    }

    log(f"2 stream: one worker, {streams} streams, latency alone and with {others} others")
    with uvicorn(services, args=SERVER_ARGS) as server:
        params.update(port=server.port, pid=server.pid)  # type: ignore[attr-defined]
        result = _load("scenario", params, services, folder)
    log(f"2 stream: the baseline, a fresh worker holding {streams} idle keep-alive connections")
    with uvicorn(services, args=SERVER_ARGS) as server:
        idle = _load(
            "idle_connections",
            {"port": server.port, "pid": server.pid, "streams": streams},  # type: ignore[attr-defined]
            services,
            folder,
        )

    per_stream = (result["rss_after_kb"] - result["rss_before_kb"]) / result["streams"]
    per_idle = (idle["rss_after_kb"] - idle["rss_before_kb"]) / idle["connections"]
    alone = [x * 1000 for x in result["latency_alone"]]
    crowded = [x * 1000 for x in result["latency_with_others"]]
    poll = result["polling"]
    polling_per_minute = poll["per_tab_per_minute"] * others
    stream_per_minute = result["stream_requests"] / result["stream_window"] * 60
    target = "2 stream"
    return [
        Row(
            target,
            f"memory per stream, {result['streams']} open",
            per_stream,
            "KB",
            per_idle,
            "idle keep-alive connection",
            Check("figure", "<=", 40.0, "≤ 40 KB", quick=1.5),
            note=f"server RSS {result['rss_before_kb'] / 1024:.0f} → "
            f"{result['rss_after_kb'] / 1024:.0f} MB; {REFS_PER_TAB} records per stream; "
            f"opening the last {result['streams'] - others} took {result['open_seconds']:.1f} s "
            f"({(result['streams'] - others) / result['open_seconds']:.0f}/s), closing all "
            f"{result['close_seconds']:.1f} s",
        ),
        Row(
            target,
            f"event to listener p99, {others} others",
            percentile(crowded, 99),
            "ms",
            percentile(alone, 99),
            "no other client",
            Check("figure", "<=", 20.0, "≤ 20 ms", quick=2.0),
            note=f"{len(crowded)} events; p50 {percentile(crowded, 50):.2f} ms vs "
            f"{percentile(alone, 50):.2f} ms alone; publish (Redis) → hub → stream → client",
        ),
        Row(
            target,
            f"{others} streams reconnecting at once",
            result["reconnect_seconds"],
            "s",
            result["plain_seconds"],
            f"{others} plain requests at once",
            Check("figure", "<=", 10.0, "≤ 10 s, all resynced", quick=1.5),
        ),
        Row(
            target,
            f"requests/min, {others} tabs",
            stream_per_minute,
            "req/min",
            polling_per_minute,
            "polling every 500 ms",
            Check("ratio", "<=", 1 / 50, "≥ 50× fewer", quick=1.5),
            fmt="{:.0f}",
            ratio_text=f"{polling_per_minute / max(stream_per_minute, 1e-9):.0f}× fewer",
            note=f"each tab sees one generation a minute (2 events, a re-fetch each): "
            f"{result['events_published']} events in {result['stream_window']:.0f} s, "
            f"{result['stream_requests']} requests; polling measured on {poll['tabs']} tabs for "
            f"{poll['seconds']:.0f} s ({poll['served']} requests, "
            f"{poll['per_tab_per_minute']:.0f}/tab/min, p99 {poll['p99_ms']:.0f} ms), x{others} "
            "tabs",
        ),
    ]
