"""The server-sent-event view: one stream per browser tab, for the records its page shows.

Browsers allow about six HTTP/1.1 connections per host, so a stream per chip would hang a page of
seven; hence one stream per tab, naming its references in one signed token. The signature is the
authorisation: the page that embedded it was rendered for this user, and the stream reveals only
"this reference changed", never content. So the loop touches neither the ORM nor the session;
under ASGI every such access would cost a thread hop per event, per client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from django.conf import settings
from django.core import signing
from django.core.handlers.asgi import ASGIRequest
from django.http import (
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseForbidden,
    HttpResponseNotAllowed,
    HttpResponseNotFound,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from page_images.conf import app_settings
from page_images.events import get_bus
from page_images.events.base import RESYNC
from page_images.live.hub import get_hub
from page_images.live.tokens import (
    WrongSession,
    session_binding,
    sign_references,
    unsign_references,
)
from page_images.signer import RecordSigner

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from django.http import HttpRequest
    from django.http.response import HttpResponseBase

    from page_images.live.hub import Hub

__all__ = [
    "FIRST_FRAME",
    "KEEPALIVE_SECONDS",
    "StreamRefused",
    "event_stream",
    "frame",
    "frames",
    "stream_references",
]

#: A comment frame this often keeps proxies and load balancers from closing an idle stream.
KEEPALIVE_SECONDS = 15.0
#: More references than any page shows; the cap bounds what one connection can make us index.
MAX_REFERENCES: Final = 1000
#: How long a browser waits before reconnecting a dropped stream, in milliseconds.
RETRY_MILLISECONDS: Final = 3000

_RESYNC_FRAME: Final = "event: resync\ndata: \n\n"
_KEEPALIVE_FRAME: Final = ": keep-alive\n\n"
#: A stream's first frame, once it is subscribed: how long to wait before reconnecting, and resync.
FIRST_FRAME: Final = f"retry: {RETRY_MILLISECONDS}\n\n{_RESYNC_FRAME}"


def frame(reference: str | None) -> str:
    """The frame for what an inbox gave: None (nothing within the keep-alive time), RESYNC or a
    changed reference."""
    if reference is None:
        return _KEEPALIVE_FRAME
    if reference == RESYNC:
        return _RESYNC_FRAME
    return f"event: changed\ndata: {reference}\n\n"


class StreamRefused(Exception):
    """Why a stream request gets no stream: the status and the plain-text message to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def stream_references(
    method: str, token: str, session_key: str | None = None
) -> tuple[list[str], str]:
    """What a stream request may follow and whose it is, or :class:`StreamRefused` with the answer.

    Shared by the view and by :mod:`page_images.live.asgi`, so that both answer alike. 404 means "no
    stream here, poll instead": no bus is configured. A token from another session, or past
    ``STREAM_MAX_AGE``, is a 403 (the page then polls); a session already holding
    ``STREAMS_PER_SESSION`` streams in this process gets a 429.
    """
    if method != "GET":
        raise StreamRefused(405, "Only GET.")
    if get_bus() is None:
        raise StreamRefused(404, "No event stream here: poll instead.")
    try:
        references = unsign_references(
            token, session_key=session_key, max_age=app_settings.STREAM_MAX_AGE
        )
    except signing.SignatureExpired:
        raise StreamRefused(403, "This page's stream token has expired: reload the page.") from None
    except WrongSession:
        raise StreamRefused(403, "This stream belongs to another session.") from None
    except signing.BadSignature:
        raise StreamRefused(400, "Invalid or tampered 'refs'.") from None
    if len(references) > MAX_REFERENCES:
        raise StreamRefused(400, f"More than {MAX_REFERENCES} references.")
    owner = session_binding(session_key)
    if owner and get_hub().streams_of(owner) >= app_settings.STREAMS_PER_SESSION:
        raise StreamRefused(429, "Too many open streams for this session.")
    return references, owner


#: The stream's headers besides its content type, wherever it is served from.
STREAM_HEADERS: Final = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx would otherwise hold events in its buffer
}
CONTENT_TYPE: Final = "text/event-stream"


@csrf_exempt
async def event_stream(request: HttpRequest) -> HttpResponseBase:
    """Stream ``resync`` at once, then ``changed`` for each listed reference that changes.

    Exempt from CSRF because it changes nothing: any other method gets an honest 405, not a
    403 that sends a developer hunting for a missing token. Under WSGI the answer is 404 (poll
    instead): Django would read the endless async stream to its end, holding a thread forever.
    """
    if request.method == "GET" and not isinstance(request, ASGIRequest):
        return _text(HttpResponseNotFound, "No event stream here: poll instead.")
    try:
        references, owner = stream_references(
            request.method or "",
            request.GET.get("refs", ""),
            request.COOKIES.get(settings.SESSION_COOKIE_NAME),
        )
    except StreamRefused as refused:
        if refused.status == 405:
            return HttpResponseNotAllowed(["GET"])
        answer = HttpResponse(refused.message, content_type="text/plain; charset=utf-8")
        answer.status_code = refused.status
        return answer
    response = StreamingHttpResponse(frames(references, owner), content_type=CONTENT_TYPE)
    for name, value in STREAM_HEADERS.items():
        response[name] = value
    return response


@csrf_exempt
@require_POST
def stream_token(request: HttpRequest) -> HttpResponse:
    """The stream URL for the records a page shows, for a page whose stream tag came first.

    The script posts the signed references its containers carry (``ref``, repeated); each is
    checked like the chip's, and the answer is a token bound to the caller's session, as the tag
    would have rendered. Exempt from CSRF: it changes nothing, and another site's page could make
    a browser ask but could not read the answer. Visitors get no stream.
    """
    if not request.user.is_authenticated:
        return _text(HttpResponseForbidden, "Log in to follow these records.")
    signer = RecordSigner()
    references = []
    for signed in request.POST.getlist("ref")[:MAX_REFERENCES]:
        try:
            references.append(signer.unsign(signed))
        except signing.BadSignature:
            continue
    if not references:
        return _text(HttpResponseBadRequest, "No valid 'ref'.")
    token = sign_references(references, session_key=request.session.session_key)
    return JsonResponse({"url": f"{reverse('page_images:events')}?refs={token}"})


def frames(references: list[str], owner: str = "") -> AsyncGenerator[str, None]:
    """The frames of a stream following ``references`` for ``owner``, from this loop's hub."""
    return _frames(get_hub(), references, owner)


async def _frames(hub: Hub, references: list[str], owner: str) -> AsyncGenerator[str, None]:
    """The stream's frames. The subscription ends when the client leaves.

    Django cancels the response when the client disconnects, and closes this generator: both
    leave the ``async with``, so a dead tab never stays subscribed.
    """
    _release_request_thread()
    async with hub.subscription(references, owner) as inbox:
        # Subscribed first, resync second: a change made while the browser re-reads is then
        # announced again rather than lost.
        yield FIRST_FRAME
        while True:
            yield frame(await inbox.wait(KEEPALIVE_SECONDS))


def _release_request_thread() -> None:
    """Give back the thread Django's ASGI handler keeps for this request while it streams.

    Django runs every request in asgiref's ``ThreadSensitiveContext``: the first sync call in it
    (any sync middleware hook) starts a one-thread executor that lives until the request ends. For
    a stream that is hours, so every open tab would hold an idle OS thread: measured, a third of
    a stream's memory and most of its connect time (docs/benchmarks.md, target 2). Once the
    response streams, the middleware has run and this request makes no more sync calls but the
    closing ones, so the executor is shut down here; if a closing call comes, asgiref starts a
    new one for it. asgiref's bookkeeping is not public API: anything unexpected leaves it alone.
    """
    try:
        from asgiref.sync import SyncToAsync

        context = SyncToAsync.thread_sensitive_context.get(None)
        if context is None or getattr(context, "_executor", None) is not None:
            return  # no per-request executor, or one its owner supplied and will reuse
        executor = SyncToAsync.context_to_thread_executor.pop(context, None)
    except Exception:  # an asgiref that keeps its executors elsewhere
        return
    if executor is not None:
        executor.shutdown(wait=False)


def _text(response_class: type[HttpResponse], message: str) -> HttpResponse:
    return response_class(message, content_type="text/plain; charset=utf-8")
