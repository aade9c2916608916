"""A django-ninja router for sites that build their endpoints with ninja (``pip install
"django-page-images[ninja]"``): the chip's click, and a record's image state.

    api = NinjaAPI(urls_namespace="api")
    api.add_router("/page-images/", "page_images.api.router")
    # settings: PAGE_IMAGES["TRIGGER_URL"] = "api:page_images_generate"

Both operations are doors to the same rules as the views (:mod:`page_images.clicks`): the same
size limit, signed reference, permission, rate limit, quota and error mapping, so that neither is
a way around the other's checks. What differs is the answer. A click from a container whose page
has an event stream gets 204 No Content, as the plan this app grew from has it: the container
comes by the stream, the same way a worker's picture does. A click that no stream would answer
(a chip alone, the prompt panel, a page served by WSGI) gets the container as the view sends
it. An API client gets JSON. Refusals to htmx are the views' own markup, so the editor reads
the reason in place.

CSRF: ninja exempts its views from Django's CsrfViewMiddleware and checks the token in its cookie
authentication instead. The click is therefore bound to Django's session through
``SessionAuth(csrf=True)`` on the operation itself: a router mounted with another ``auth`` (or
none) keeps it, and a cross-site POST is refused with 403 before anything is read.
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - pydantic reads the annotations at run time
from typing import TYPE_CHECKING, Any, Literal, cast

from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from page_images import clicks
from page_images.clicks import Refused
from page_images.exceptions import MissingDependencyError
from page_images.permissions import can_generate
from page_images.rendering import container_context, streaming_enabled, visitor_state
from page_images.views import answer_refusal, is_htmx

try:
    from ninja import Form, Query, Router, Schema, Status
    from ninja.security import SessionAuth
except ImportError as exc:
    raise MissingDependencyError("django-ninja", "ninja") from exc

if TYPE_CHECKING:
    from page_images.models import ImageGeneratingMixin

__all__ = ["router"]

State = Literal["empty", "generating", "review", "ready", "error"]


class Click(Schema):
    """What the chip posts: its signed reference, and what the prompt panel adds."""

    ref: str
    next: str = ""
    prompt: str | None = None
    preset: str = ""
    aspect_ratio: str = ""
    #: "1" from a "Regenerate" button, honoured only where the site offers Regenerate.
    replace: str = ""


class StatusQuery(Schema):
    ref: str


class ImageStatus(Schema):
    """A record's image as the asking user's own page would show it.

    A job's progress and error are shown only to those who may generate: to anyone else a record
    is "ready" (with its picture) or "empty", whatever its job is doing.
    """

    reference: str
    state: State
    image_url: str | None
    alt: str
    error: str
    claimed_at: datetime | None
    started_at: datetime | None


class Refusal(Schema):
    """Why nothing was queued, in the words the chip would show (ninja's own shape for errors)."""

    detail: str


#: Django's session, with ninja's CSRF check of the cookie-authenticated request.
session = SessionAuth(csrf=True)

router = Router(tags=["page images"])

_REFUSALS = frozenset({400, 403, 404, 429, 503})


def _status(user: Any, instance: ImageGeneratingMixin) -> ImageStatus:
    editor = can_generate(user, instance)
    state = instance.image_state
    if not editor:
        state = visitor_state(instance, state)
    return ImageStatus(
        reference=instance.image_reference,
        state=cast("State", state),
        image_url=instance.image_file.url if state == "ready" else None,
        alt=instance.get_image_alt_text(),
        error=instance.image_error_message if editor and state == "error" else "",
        claimed_at=instance.image_claimed_at if editor else None,
        started_at=instance.image_started_at if editor else None,
    )


def _streamed(request: HttpRequest, click: Click) -> bool:
    """Whether the click came from a container that the page's event stream refreshes.

    htmx names the target's id in ``HX-Target``: a container's id, for its own buttons; nothing,
    for a chip alone, whose form is its own target and which no event replaces. A container that
    shows the prompt panel (its form sends the prompt) does not listen either: an event must not
    wipe out what an editor is typing, so it waits for the click's own answer.
    """
    return (
        click.prompt is None
        and request.headers.get("HX-Target", "").startswith("page-images-")
        and streaming_enabled(request)
    )


def _container(request: HttpRequest, instance: ImageGeneratingMixin) -> HttpResponse:
    html = render_to_string("page_images/container.html", container_context(request, instance))
    return HttpResponse(html)


@router.post(
    "/jobs/image/generate",
    url_name="page_images_generate",
    auth=session,
    response={200: ImageStatus, 202: ImageStatus, 204: None, _REFUSALS: Refusal},
    summary="Generate a record's image",
)
def generate(request: HttpRequest, click: Form[Click]) -> Any:
    """Claim the record and queue its job: what the chip's click does.

    202 with the record's status when a job was queued; 200 when none was, because a job is
    already running or a picture has landed meanwhile. To htmx: 204 when the page's event stream
    brings the container, else the container. A refusal queues nothing: 400 (a bad or stale
    reference, an empty prompt, a choice the site does not offer), 401 (not logged in), 403 (no
    permission, or no valid CSRF token), 404 (the record is gone), 429 (rate limit or quota),
    503 (the task queue or the rate limit's cache is unreachable).
    """
    try:
        clicks.check_length(request.META.get("CONTENT_LENGTH"))
        instance = clicks.editable(request.user, click.ref)
        token = clicks.start(
            instance,
            request.user,
            prompt=click.prompt,
            preset=click.preset,
            aspect_ratio=click.aspect_ratio,
            replace=click.replace == "1",
        )
    except Refused as refused:
        if is_htmx(request):
            return answer_refusal(request, refused)
        return Status(refused.status, Refusal(detail=refused.message))
    if is_htmx(request):
        return Status(204, None) if _streamed(request, click) else _container(request, instance)
    return Status(202 if token is not None else 200, _status(request.user, instance))


@router.get(
    "/jobs/image/status",
    url_name="page_images_status",
    auth=None,
    response={200: ImageStatus, frozenset({400, 404}): Refusal},
    summary="A record's image and its job",
)
def status(request: HttpRequest, query: Query[StatusQuery]) -> Any:
    """The record's image as the asking user's page would show it; visitors included, as the
    container's own re-fetch: they see the picture of a record they may see, and nothing else."""
    try:
        instance = clicks.viewable(request.user, query.ref)
    except Refused as refused:
        return Status(refused.status, Refusal(detail=refused.message))
    return Status(200, _status(request.user, instance))
