"""The floor: an SSE stream in plain ASGI, no framework, no check, one Redis subscription.

What any stream of record events must do and nothing more: read the references from the query
string, index the connection under them, answer ``resync``, then forward each event published on
``BENCH_BUS_CHANNEL`` (the payload of ``page_images``' Redis bus) to the connections that follow
its reference, until the client leaves. No host check, no signature, no Django: the
figures of target 9 that are held against it say what those cost.
"""

from __future__ import annotations

import asyncio
import os
from urllib.parse import parse_qs

import redis.asyncio as aioredis

CHANNEL = os.environ.get("BENCH_BUS_CHANNEL", "page_images:events")
HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]

_by_reference: dict[str, set[asyncio.Queue[str]]] = {}
_listener: asyncio.Task[None] | None = None


async def _listen() -> None:
    client = aioredis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    async with client.pubsub() as pubsub:
        await pubsub.subscribe(CHANNEL)
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            reference = message["data"].decode()
            for queue in _by_reference.get(reference, ()):
                queue.put_nowait(reference)


async def application(scope, receive, send) -> None:
    global _listener
    if scope["type"] != "http":
        return
    if _listener is None:
        _listener = asyncio.get_running_loop().create_task(_listen())
    query = parse_qs(scope["query_string"].decode("latin-1"))
    references = [r for r in query.get("refs", [""])[0].split(",") if r]
    queue: asyncio.Queue[str] = asyncio.Queue()
    for reference in references:
        _by_reference.setdefault(reference, set()).add(queue)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send(
        {"type": "http.response.body", "body": b"event: resync\ndata: \n\n", "more_body": True}
    )

    async def forward() -> None:
        while True:
            reference = await queue.get()
            frame = f"event: changed\ndata: {reference}\n\n".encode()
            await send({"type": "http.response.body", "body": frame, "more_body": True})

    forwarding = asyncio.ensure_future(forward())
    try:
        while (await receive())["type"] != "http.disconnect":
            pass
    finally:
        forwarding.cancel()
        for reference in references:
            followers = _by_reference[reference]
            followers.discard(queue)
            if not followers:
                del _by_reference[reference]
