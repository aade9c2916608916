"""The server-sent-event view: one stream per browser tab, for the records its page shows.

Browsers allow about six HTTP/1.1 connections per host, so a stream per chip would hang a page of
seven; hence one stream per tab, naming its references in one signed token. The signature is the
authorisation: the page that embedded it was rendered for this user, and the stream reveals only
"this reference changed", never content. So the loop touches neither the ORM nor the session;
under ASGI every such access would cost a thread hop per event, per client.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import TYPE_CHECKING, Final

from django.core import signing
from django.core.handlers.asgi import ASGIRequest
from django.http import (
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseNotAllowed,
    HttpResponseNotFound,
    StreamingHttpResponse,
)
from django.views.decorators.csrf import csrf_exempt

from page_images.events import get_bus
from page_images.events.base import RESYNC
from page_images.events.hub import get_hub

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable

    from django.http import HttpRequest
    from django.http.response import HttpResponseBase

    from page_images.events.hub import Hub

__all__ = ["KEEPALIVE_SECONDS", "event_stream", "sign_references", "unsign_references"]

SALT: Final = "page_images.stream"
#: A comment frame this often keeps proxies and load balancers from closing an idle stream.
KEEPALIVE_SECONDS = 15.0
#: More references than any page shows; the cap bounds what one connection can make us index.
MAX_REFERENCES: Final = 1000
#: How long a browser waits before reconnecting a dropped stream, in milliseconds.
RETRY_MILLISECONDS: Final = 3000

_RESYNC_FRAME: Final = "event: resync\ndata: \n\n"
_KEEPALIVE_FRAME: Final = ": keep-alive\n\n"


def sign_references(references: Iterable[str]) -> str:
    """A URL-safe token naming ``references``; sorted and deduplicated, so one page, one token."""
    return signing.dumps(sorted(set(references)), salt=SALT, compress=True)


def unsign_references(token: str) -> list[str]:
    """The references in ``token``; raises ``signing.BadSignature`` if it was tampered with."""
    try:
        value = signing.loads(token, salt=SALT)
    except (ValueError, zlib.error) as exc:
        # Genuinely signed, but around a payload sign_references never makes (base64, zlib or
        # JSON that does not decode): as unusable as a forged token, and answered the same way.
        raise signing.BadSignature("The token does not hold a list of references.") from exc
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise signing.BadSignature("The token does not hold a list of references.")
    return value


@csrf_exempt
async def event_stream(request: HttpRequest) -> HttpResponseBase:
    """Stream ``resync`` at once, then ``changed`` for each listed reference that changes.

    Exempt from CSRF because it changes nothing: any other method gets an honest 405, not a
    403 that sends a developer hunting for a missing token. 404 means "no stream here, poll
    instead": no bus is configured, or the server is not ASGI (under WSGI, Django would read the
    endless async stream to its end, holding a thread forever).
    """
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    if get_bus() is None or not isinstance(request, ASGIRequest):
        return _text(HttpResponseNotFound, "No event stream here: poll instead.")
    try:
        references = unsign_references(request.GET.get("refs", ""))
    except signing.BadSignature:
        return _text(HttpResponseBadRequest, "Invalid or tampered 'refs'.")
    if len(references) > MAX_REFERENCES:
        return _text(HttpResponseBadRequest, f"More than {MAX_REFERENCES} references.")
    response = StreamingHttpResponse(
        _frames(get_hub(), references), content_type="text/event-stream"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx would otherwise hold events in its buffer
    return response


async def _frames(hub: Hub, references: list[str]) -> AsyncIterator[str]:
    """The stream's frames. The subscription ends when the client leaves.

    Django cancels the response when the client disconnects, and closes this generator: both
    leave the ``async with``, so a dead tab never stays subscribed.
    """
    async with hub.subscription(references) as queue:
        # Subscribed first, resync second: a change made while the browser re-reads is then
        # announced again rather than lost.
        yield f"retry: {RETRY_MILLISECONDS}\n\n{_RESYNC_FRAME}"
        while True:
            try:
                reference = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except asyncio.TimeoutError:
                yield _KEEPALIVE_FRAME
                continue
            yield _RESYNC_FRAME if reference == RESYNC else f"event: changed\ndata: {reference}\n\n"


def _text(response_class: type[HttpResponse], message: str) -> HttpResponse:
    return response_class(message, content_type="text/plain; charset=utf-8")
