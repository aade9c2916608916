"""The server's own cost of a stream: a bare ASGI app that holds one and does nothing else.

It answers every request with the stream's head and first frame, as ``EventStreams`` does, then
waits for the client to leave; no Django, no hub, no keep-alive timer. Served by each ASGI
server in turn (benchmarks.servers), it splits a stream's memory into the server's part and ours.
"""

from __future__ import annotations

from typing import Any

FIRST = b"retry: 3000\n\nevent: resync\ndata: \n\n"
HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": FIRST, "more_body": True})
    while (await receive())["type"] != "http.disconnect":
        pass
