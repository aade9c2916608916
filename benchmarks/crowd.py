"""A crowd of event streams held by one load process, driven over stdin by the orchestrator.

``python -m benchmarks.crowd SOURCE_ADDRESS`` reads one JSON command a line and answers one JSON
line each (see :func:`main`). Tens of thousands of streams need several such processes: one
process may hold 20,000 open files (the machine's hard limit), and one source address has about
28,000 ephemeral ports towards a server, so each process binds its own 127.0.0.x.

A stream here is an ``asyncio.Protocol`` that scans the bytes for ``event:`` frames, not a
task reading an ``asyncio.StreamReader`` (benchmarks.client): a tenth of the memory and CPU per
stream, so four processes on one core hold 50,000 of them and still read every keep-alive.
Chunked framing needs no parsing: each SSE frame is one ASGI body message, so one chunk, and the
chunk-size lines between frames are lines that start with neither ``event:`` nor ``data:``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

HOST = "127.0.0.1"
CHANNEL = "page_images:events"


class Stream(asyncio.Protocol):
    """One tab's event stream: counts its resyncs and the ``changed`` references it receives."""

    __slots__ = ("buffer", "crowd", "head_ok", "lost", "request", "resync_mark", "transport")

    def __init__(self, crowd: Crowd, request: bytes) -> None:
        self.crowd = crowd
        self.request = request
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.head_ok = False
        self.lost = False
        self.resync_mark = -1  # the crowd's mark when this stream last saw a resync

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        while True:
            end = buffer.find(b"\n\n")
            if end < 0:
                break
            frame, buffer = buffer[:end], buffer[end + 2 :]
            if not self.head_ok:
                if not frame.startswith(b"HTTP/1.1 200"):
                    self.crowd.refused(self, frame[:80])
                    return
                self.head_ok = True
            if b"event: resync" in frame:
                self.crowd.resynced(self)
            elif b"event: changed" in frame:
                start = frame.index(b"data: ") + 6
                stop = frame.find(b"\n", start)
                self.crowd.changed(self, frame[start : stop if stop >= 0 else None].decode())
        self.buffer = buffer

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.crowd.dropped(self)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def stream_request(port: int, token: str) -> bytes:
    return (
        f"GET /page-images/events/?refs={token} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        "Accept: text/event-stream\r\n\r\n"
    ).encode()


class Crowd:
    """The streams of this process, and the marks the orchestrator counts them against."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.streams: list[Stream] = []
        self.mark = 0
        self.since_mark = 0  # streams that saw a resync since the mark
        self.last_resync = 0.0
        self.waiting: dict[Stream, asyncio.Future[None]] = {}
        self.watch: str | None = None
        self.watch_seen: set[Stream] = set()
        self.last_watch = 0.0
        self.listeners: dict[str, asyncio.Future[float]] = {}
        self.errors: list[str] = []
        self.lost = 0
        self.progress = asyncio.Event()

    # --- callbacks from the streams ----------------------------------------------------------

    def resynced(self, stream: Stream) -> None:
        if stream.resync_mark != self.mark:
            stream.resync_mark = self.mark
            self.since_mark += 1
            self.last_resync = time.time()
            self.progress.set()
        waiter = self.waiting.pop(stream, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def changed(self, stream: Stream, reference: str) -> None:
        waiter = self.listeners.pop(reference, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(time.perf_counter())
        if reference == self.watch and stream not in self.watch_seen:
            self.watch_seen.add(stream)
            self.last_watch = time.time()
            self.progress.set()

    def refused(self, stream: Stream, head: bytes) -> None:
        self.errors.append(head.decode("latin-1"))
        stream.close()

    def dropped(self, stream: Stream) -> None:
        self.lost += 1
        waiter = self.waiting.pop(stream, None)
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError("the stream closed before its resync"))

    # --- commands ----------------------------------------------------------------------------

    async def _open_one(self, port: int, token: str) -> Stream:
        loop = asyncio.get_running_loop()
        for attempt in range(5):
            stream = Stream(self, stream_request(port, token))
            waiter = self.waiting[stream] = loop.create_future()
            try:
                await loop.create_connection(
                    lambda s=stream: s, HOST, port, local_addr=(self.source, 0)
                )
                await asyncio.wait_for(waiter, 60)
                return stream
            except (OSError, asyncio.TimeoutError) as exc:
                self.waiting.pop(stream, None)
                stream.close()
                if attempt == 4:
                    raise ConnectionError(
                        f"no stream from port {port} in 5 tries: {exc!r}"
                    ) from exc
                await asyncio.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    async def open(self, targets: list[list[Any]], parallel: int) -> dict[str, Any]:
        """Open a stream per ``[port, token]``; the seconds until every one had its resync."""
        gate = asyncio.Semaphore(parallel)
        lost = self.lost

        async def one(port: int, token: str) -> Stream:
            async with gate:
                return await self._open_one(port, token)

        start = time.perf_counter()
        opened = await asyncio.gather(*(one(port, token) for port, token in targets))
        seconds = time.perf_counter() - start
        self.streams += opened
        self.lost = lost  # a retried connect is not a stream lost
        return {"opened": len(opened), "seconds": seconds, "errors": self.errors[:3]}

    def set_mark(self, watch: str | None = None) -> dict[str, Any]:
        self.mark += 1
        self.since_mark = 0
        self.last_resync = 0.0
        self.watch = watch
        self.watch_seen = set()
        self.last_watch = 0.0
        self.lost = 0
        return {"mark": self.mark}

    async def wait_for(self, what: str, timeout: float) -> dict[str, Any]:
        """Wait until every stream saw a resync (``what="resync"``) or the watched reference."""
        deadline = time.monotonic() + timeout

        def seen() -> int:
            return self.since_mark if what == "resync" else len(self.watch_seen)

        while seen() < len(self.streams) and time.monotonic() < deadline:
            self.progress.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.progress.wait(), 0.5)
        last = self.last_resync if what == "resync" else self.last_watch
        return {
            "seen": seen(),
            "streams": len(self.streams),
            "last": last,
            "lost": self.lost,
            "open": sum(not stream.lost for stream in self.streams),
        }

    async def latency(
        self, listeners: list[list[Any]], redis_url: str, samples: int
    ) -> dict[str, Any]:
        """Publish each listener's reference in turn; the seconds until it arrives, per port.

        The listeners (``[port, token, reference]``) are opened on first use and kept, so that
        the same connections are measured alone and among the crowd.
        """
        import redis.asyncio as aioredis

        loop = asyncio.get_running_loop()
        if not self.streams:
            await self.open([[port, token] for port, token, _ in listeners], len(listeners))
        publisher = aioredis.Redis.from_url(redis_url)
        out: dict[str, list[float]] = {str(port): [] for port, _, _ in listeners}
        try:
            for sample in range(samples):
                port, _, reference = listeners[sample % len(listeners)]
                waiter = self.listeners[reference] = loop.create_future()
                start = time.perf_counter()
                await publisher.publish(CHANNEL, reference)
                try:
                    arrived = await asyncio.wait_for(waiter, 10)
                except asyncio.TimeoutError:
                    raise TimeoutError(f"{reference} did not reach port {port} in 10 s") from None
                out[str(port)].append(arrived - start)
                await asyncio.sleep(0.01)
        finally:
            await publisher.aclose()
        return {"by_port": out}

    def close(self) -> dict[str, Any]:
        for stream in self.streams:
            stream.close()
        return {"closed": len(self.streams)}


async def serve(source: str) -> None:
    from benchmarks.harness import raise_open_files

    raise_open_files(20_000)
    crowd = Crowd(source)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 28)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = json.loads(line)
        name = command.pop("command")
        try:
            if name == "open":
                answer = await crowd.open(command["targets"], command.get("parallel", 200))
            elif name == "mark":
                answer = crowd.set_mark(command.get("watch"))
            elif name == "wait":
                answer = await crowd.wait_for(command["what"], command["timeout"])
            elif name == "latency":
                answer = await crowd.latency(
                    command["listeners"], command["redis_url"], command["samples"]
                )
            elif name == "close":
                answer = crowd.close()
                await asyncio.sleep(0.5)
                crowd.streams = []
            else:
                break
        except Exception as exc:
            answer = {"error": f"{name}: {type(exc).__name__}: {exc}"}
        print(json.dumps(answer), flush=True)


class Crowds:
    """The orchestrator's side: several crowd processes on the load core, asked together."""

    def __init__(self, count: int, env: dict[str, str], cpu: int | None, first: int = 2) -> None:
        import subprocess

        from benchmarks.harness import PYTHON, ROOT, pin

        self.processes = []
        for number in range(count):
            child = subprocess.Popen(
                [PYTHON, "-m", "benchmarks.crowd", f"127.0.0.{first + number}"],
                env=env,
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            pin(cpu, child.pid)
            self.processes.append(child)

    def ask(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send one command to each process (in order), then read every answer."""
        for child, command in zip(self.processes, commands, strict=False):
            assert child.stdin is not None
            child.stdin.write(json.dumps(command) + "\n")
            child.stdin.flush()
        answers = []
        for child, _ in zip(self.processes, commands, strict=False):
            assert child.stdout is not None
            line = child.stdout.readline()
            if not line:
                raise RuntimeError(f"a crowd process exited ({child.poll()})")
            answer = json.loads(line)
            if "error" in answer:
                raise RuntimeError(f"a crowd process failed: {answer['error']}")
            answers.append(answer)
        return answers

    def ask_all(self, command: dict[str, Any]) -> list[dict[str, Any]]:
        return self.ask([dict(command) for _ in self.processes])

    def close(self) -> None:
        from benchmarks.harness import stop_process

        for child in self.processes:
            with contextlib.suppress(OSError):
                assert child.stdin is not None
                child.stdin.close()
        for child in self.processes:
            stop_process(child, timeout=30)

    def __enter__(self) -> Crowds:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - the bench extra installs it
        asyncio.run(serve(sys.argv[1]))
    else:
        uvloop.run(serve(sys.argv[1]))


if __name__ == "__main__":
    main()
