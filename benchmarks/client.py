"""A small asyncio HTTP/1.1 client for the load generators: keep-alive requests and SSE streams.

Written for the benchmarks rather than taken from a library: it costs a few microseconds per
request, so one load process (on its own core) drives the server faster than it can answer, and
it holds 10,000 streams in a few hundred MB. It speaks only what the benchmark site answers:
``Content-Length`` or chunked bodies, and ``text/event-stream``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

HOST = "127.0.0.1"


class HttpError(Exception):
    pass


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Event:
    name: str
    data: str


def build_request(
    method: str, path: str, port: int, headers: Mapping[str, str] | None = None, body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}"]
    lines += [f"{key}: {value}" for key, value in (headers or {}).items()]
    if body or method in {"POST", "PUT"}:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class Connection:
    port: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    closed: bool = False
    _pending: bytes = field(default=b"", repr=False)

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(HOST, port, limit=1 << 20)
        return cls(port, reader, writer)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()

    async def _head(self) -> tuple[int, dict[str, str]]:
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = raw.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise HttpError(f"bad status line {status_line!r}")
        headers: dict[str, str] = {}
        for line in header_lines:
            if line:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
        return int(parts[1]), headers

    async def _chunk(self) -> bytes:
        size_line = await self.reader.readuntil(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        data = await self.reader.readexactly(size + 2) if size else b""
        if not size:
            await self.reader.readuntil(b"\r\n")
        return data[:-2]

    async def send(self, raw: bytes) -> Response:
        """Send a request built by :func:`build_request`; read the whole answer."""
        self.writer.write(raw)
        status, headers = await self._head()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while chunk := await self._chunk():
                chunks.append(chunk)
            body = b"".join(chunks)
        else:
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Response(status, headers, body)

    async def request(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> Response:
        return await self.send(build_request(method, path, self.port, headers, body))

    async def start_stream(self, path: str, headers: Mapping[str, str] | None = None) -> None:
        """Send the GET of an event stream and read its head (200, text/event-stream)."""
        self.writer.write(
            build_request(
                "GET", path, self.port, {"Accept": "text/event-stream", **(headers or {})}
            )
        )
        status, head = await self._head()
        if status != 200 or "text/event-stream" not in head.get("content-type", ""):
            raise HttpError(f"stream answered {status} {head.get('content-type')!r}")

    async def events(self) -> AsyncIterator[Event]:
        """The stream's events (comments and ``retry:`` lines skipped), as they arrive."""
        buffer = b""
        while True:
            chunk = await self._chunk()
            if not chunk:
                return
            buffer += chunk
            while b"\n\n" in buffer:
                frame, buffer = buffer.split(b"\n\n", 1)
                name, data = "message", []
                for line in frame.decode().split("\n"):
                    if line.startswith("event:"):
                        name = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].strip())
                if data or name != "message":
                    yield Event(name, "\n".join(data))
