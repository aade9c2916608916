"""The floor of a held connection: a raw asyncio server answering the stream's first frames.

``python -m benchmarks.rawserver PORT``: on uvloop (as the ASGI servers measured beside it), one
``asyncio.Protocol`` per connection answers any request with the stream's head and its first
``resync`` frame, then holds the connection open and sends nothing more. What a stream costs
beyond this is the ASGI server's and the app's.
"""

from __future__ import annotations

import asyncio
import sys

HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
FIRST = b"retry: 3000\n\nevent: resync\ndata: \n\n"
ANSWER = HEAD + f"{len(FIRST):x}\r\n".encode() + FIRST + b"\r\n"


class Held(asyncio.Protocol):
    __slots__ = ("transport",)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if b"\r\n\r\n" in data:
            self.transport.write(ANSWER)  # type: ignore[attr-defined]


async def serve(port: int) -> None:
    from benchmarks.harness import raise_open_files

    raise_open_files(20_000)
    server = await asyncio.get_running_loop().create_server(Held, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    import uvloop

    uvloop.run(serve(int(sys.argv[1])))
