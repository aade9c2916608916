"""``application = EventStreams(get_asgi_application())``: the event stream outside Django's cycle.

Under Django's ASGI handler every request runs the project's middleware, and each synchronous
middleware hook is a hop to the request's own thread (asgiref's ``ThreadSensitiveContext``). That
is cheap one request at a time, but when a deploy or a Redis restart drops every tab and 2,000 of
them reconnect together, 2,000 threads contend with the event loop for the GIL: one uvicorn worker
answered about 100 streams a second and took 18 s to resync them all (docs/benchmarks.md, target
2). The stream needs nothing from that cycle: its signed token is its authorisation, and it reads
neither the session nor the database. So this wrapper answers the stream's own URL in the event
loop, with no thread, and hands every other request to Django untouched.

What it keeps: the URL comes from the URLconf (the view's path wherever ``page_images.urls`` is
included), ``ALLOWED_HOSTS`` is enforced as Django would, and the answers are the view's own
(:func:`page_images.live.stream.stream_references`). What it skips: middleware (no session, no
CSRF: the stream changes nothing) and the request signals (it opens no database connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import TYPE_CHECKING, Any, Final

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import QueryDict
from django.http.cookie import parse_cookie
from django.http.request import split_domain_port, validate_host
from django.urls import Resolver404, resolve

from page_images.live import stream as live_stream
from page_images.live.hub import get_hub
from page_images.live.stream import (
    CONTENT_TYPE,
    FIRST_FRAME,
    STREAM_HEADERS,
    StreamRefused,
    event_stream,
    frame,
    stream_references,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    from page_images.live.hub import Hub

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["EventStreams"]


class EventStreams:
    """Serve ``page_images``' event stream itself; pass everything else to ``application``."""

    def __init__(self, application: ASGIApp) -> None:
        self.application = application

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _is_stream_path(_path_info(scope)):
            await _serve(scope, receive, send)
        else:
            await self.application(scope, receive, send)


def _path_info(scope: Scope) -> str:
    # As Django's ASGIHandler does: the URLconf sees the path below the mount point.
    path: str = scope["path"]
    root = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


@functools.lru_cache(maxsize=1024)
def _is_stream_path(path: str) -> bool:
    """Whether the URLconf sends ``path`` to the stream view (remembered: a dict lookup after)."""
    try:
        return resolve(path).func is event_stream
    except Resolver404:
        return False


@receiver(setting_changed)
def _forget_paths(*, setting: str, **kwargs: object) -> None:
    if setting == "ROOT_URLCONF":  # tests swap URLconfs: a remembered answer may be wrong now
        _is_stream_path.cache_clear()


def _host_allowed(scope: Scope) -> bool:
    """``ALLOWED_HOSTS`` as ``HttpRequest.get_host()`` applies it."""
    host = ""
    for name, value in scope.get("headers", ()):
        if name == b"host":
            host = value.decode("latin-1")
            break
    if not host and scope.get("server"):
        host = str(scope["server"][0])
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    domain, _ = split_domain_port(host)
    return bool(domain) and validate_host(domain, allowed)


def _session_key(scope: Scope) -> str | None:
    """The session cookie's value, read from the headers as Django would: no session lookup."""
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            return parse_cookie(value.decode("latin-1")).get(settings.SESSION_COOKIE_NAME)
    return None


#: The stream's response headers, built once: a list per stream would be kept as long as it.
_HEADERS: Final = [
    (b"content-type", CONTENT_TYPE.encode()),
    *((name.lower().encode(), value.encode()) for name, value in STREAM_HEADERS.items()),
]


async def _serve(scope: Scope, receive: Receive, send: Send) -> None:
    if not _host_allowed(scope):
        await _answer(send, 400, "Invalid HTTP_HOST header.")
        return
    try:
        # The token is read inline: a local would live as long as the stream (hours).
        references, owner = stream_references(
            scope["method"],
            QueryDict(scope.get("query_string", b"")).get("refs", ""),
            _session_key(scope),
        )
    except StreamRefused as refused:
        extra = [(b"allow", b"GET")] if refused.status == 405 else []
        await _answer(send, refused.status, refused.message, extra)
        return
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await _follow(get_hub(), references, owner, receive, send)


async def _follow(
    hub: Hub, references: list[str], owner: str, receive: Receive, send: Send
) -> None:
    """The stream's frames, written by the request's own coroutine until the client leaves.

    A process may hold ten thousand of these, so each is one coroutine and one small task (the
    wait for ``http.disconnect``, which must run beside the frames), not a task for the frames
    too, an async generator and ``asyncio.wait``'s futures (docs/benchmarks.md, target 9): when
    the client leaves, the task wakes the inbox and the loop ends. The subscription is left on
    any exit.
    """
    async with hub.subscription(references, owner) as inbox:
        leaving = asyncio.ensure_future(_until_disconnect(receive))
        leaving.add_done_callback(lambda _: inbox.wake())
        try:
            await _body(send, FIRST_FRAME)
            while True:
                # Read at each wait, as the view's generator does (tests shorten it).
                reference = await inbox.wait(live_stream.KEEPALIVE_SECONDS)
                if leaving.done():
                    break
                await _body(send, frame(reference))
        finally:
            leaving.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await leaving


async def _body(send: Send, text: str) -> None:
    await send({"type": "http.response.body", "body": text.encode(), "more_body": True})


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _answer(
    send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = message.encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
