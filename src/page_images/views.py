"""The trigger view (the chip's POST) and the fragment view (a container's re-fetch).

The trigger view only validates and claims: the job runs in a worker, so the request costs a few
milliseconds however long the provider takes. It answers htmx with the container's new HTML,
whatever happened, including refusals, so the editor reads the reason where they clicked; a plain
POST (no JavaScript) gets a redirect back. Every refusal is a 4xx with no job queued, never a 500.
The rules themselves (size, reference, permission, rate limit, which refusal gets which status
and words) live in :mod:`page_images.clicks`, shared with the django-ninja router
(:mod:`page_images.api`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ObjectDoesNotExist
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from page_images import claims, clicks, pictures
from page_images.clicks import OUT_OF_DATE, RECORD_GONE, Refused
from page_images.conf import app_settings
from page_images.exceptions import InvalidChoiceError
from page_images.rendering import container_context

if TYPE_CHECKING:
    from collections.abc import Callable

    from page_images.models import ImageGeneratingMixin


def is_htmx(request: HttpRequest) -> bool:
    """Whether htmx sent the request: it swaps in HTML, where a plain form post is redirected."""
    return request.headers.get("HX-Request") == "true"


def _container(
    request: HttpRequest,
    instance: ImageGeneratingMixin,
    status: int,
    message: str = "",
    *,
    panel: str = "",
    prompt: str | None = None,
) -> HttpResponse:
    if message and message == instance.image_error_message:
        message = ""  # the record shows it already (a broker failure is recorded on it)
    context = container_context(request, instance, message=message, panel=panel, prompt=prompt)
    html = render_to_string("page_images/container.html", context, request)
    return HttpResponse(html, status=status)


def _refusal(status: int, message: str) -> HttpResponse:
    # No record to draw (bad or stale reference): a container-shaped message in the chip's place.
    # No role of its own: page_images.js says it in the page's live region, once.
    html = format_html('<div class="page-images page-images-refused">{}</div>', message)
    return HttpResponse(html, status=status)


def _back(request: HttpRequest) -> HttpResponseRedirect:
    for candidate in (request.POST.get("next"), request.headers.get("Referer")):
        if candidate and url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return HttpResponseRedirect(candidate)
    return HttpResponseRedirect("/")


def _answer(
    request: HttpRequest, instance: ImageGeneratingMixin | None, status: int, message: str = ""
) -> HttpResponse:
    if is_htmx(request):
        if instance is None:
            return _refusal(status, message)
        return _container(request, instance, status, message)
    if message and apps.is_installed("django.contrib.messages"):
        messages.add_message(
            request, messages.INFO if status < 400 else messages.ERROR, message, fail_silently=True
        )
    return _back(request)


def answer_refusal(request: HttpRequest, refused: Refused) -> HttpResponse:
    """A refused click as the views answer it: for htmx the container (or, with no record, a
    message in the chip's place) with the refusal's status; a plain POST is sent back."""
    cause = refused.__cause__
    prompt = request.POST.get("prompt") if request.method == "POST" else None
    if (
        isinstance(cause, InvalidChoiceError)
        and is_htmx(request)
        and prompt is not None
        and refused.instance is not None
        and app_settings.PROMPT_PANEL
    ):  # back to the panel, with what was typed
        return _container(
            request, refused.instance, 400, refused.message, panel="compose", prompt=prompt
        )
    return _answer(request, refused.instance, refused.status, refused.message)


def _posted_record(request: HttpRequest) -> ImageGeneratingMixin | HttpResponse:
    """The record a chip's POST names, once the request passed every check; else the answer.

    Shared by every button of a container (generate, try again, cancel): the same size limit,
    login, signed reference and permission (page_images.clicks), so no button is a way around
    another's checks.
    """
    try:
        clicks.check_length(request.META.get("CONTENT_LENGTH"))
    except Refused as refused:
        return _refusal(refused.status, refused.message)
    try:
        form = request.POST
    except LookupError:
        # Django's multipart parser raises this for a charset that names no text encoding
        # ("charset=rot13"); Django answers its other parse errors with a 400 by itself.
        return _refusal(400, _(clicks.UNREADABLE))
    if not request.user.is_authenticated and not is_htmx(request):
        return redirect_to_login(form.get("next") or "/")
    try:
        return clicks.editable(request.user, form.get("ref", ""))
    except Refused as refused:
        return answer_refusal(request, refused)


@require_POST
def trigger(request: HttpRequest) -> HttpResponse:
    """Claim the record and queue its job; answer with the container in its new state."""
    found = _posted_record(request)
    if isinstance(found, HttpResponse):
        return found
    form = request.POST
    try:
        clicks.start(
            found,
            request.user,
            prompt=form.get("prompt"),
            preset=form.get("preset"),
            aspect_ratio=form.get("aspect_ratio"),
            # "Regenerate" replaces a picture on purpose; the chip never does.
            replace=form.get("replace") == "1",
        )
    except Refused as refused:
        return answer_refusal(request, refused)
    return _answer(request, found, 200)


def _picture_id(request: HttpRequest) -> int | None:
    """The picture a button names, as the page drew it: a row's key. None for anything else
    (no field, a forged or broken value), which must be a 400, not the database's ValueError."""
    value = request.POST.get("picture", "")
    if not (value.isascii() and value.isdigit()) or len(value) > 18:  # a 64-bit key at most
        return None
    return int(value)


def _act(
    request: HttpRequest,
    change: Callable[[ImageGeneratingMixin, int | None], bool],
    *,
    picture: bool = False,
) -> HttpResponse:
    """Apply an editor's button to the record the POST names, after the trigger's checks.

    ``change`` gets the record and, for a button that names one (``picture``), the picture's
    key. It returns False when the page was out of date (someone else chose, restored or
    regenerated since it was drawn): the answer then shows what the record shows now.
    """
    found = _posted_record(request)
    if isinstance(found, HttpResponse):
        return found
    chosen = _picture_id(request) if picture else None
    if picture and chosen is None:
        return _answer(request, found, 400, _(OUT_OF_DATE))
    if not change(found, chosen):
        return _out_of_date(request, found)
    return _answer(request, found, 200)


@require_POST
def cancel(request: HttpRequest) -> HttpResponse:
    """Give up the record's running or queued job; answer with the container as it is now.

    The job is not killed: it finds its claim gone and discards what it makes. The editor is not
    left waiting on a job that a dead worker or a lost queue will never finish.
    """
    return _act(request, lambda record, _none: claims.cancel(record) or True)


@require_POST
def accept(request: HttpRequest) -> HttpResponse:
    """Publish the candidate the editor chose; the others are deleted, the old picture kept."""
    return _act(request, pictures.accept, picture=True)


@require_POST
def discard(request: HttpRequest) -> HttpResponse:
    """Throw the candidates away; the record shows its live picture (or the chip) again.

    The button names one of the candidates it showed: a page drawn before a newer click must
    not throw away the new candidates, which nobody has seen yet (409 instead).
    """
    return _act(request, pictures.discard, picture=True)


@require_POST
def restore(request: HttpRequest) -> HttpResponse:
    """Show an earlier picture again; the one replaced is kept, so a restore can be undone."""
    return _act(request, pictures.restore, picture=True)


def _out_of_date(request: HttpRequest, instance: ImageGeneratingMixin) -> HttpResponse:
    # Someone else chose, restored or regenerated since this page was drawn: show what is now.
    try:
        instance.refresh_from_db()
    except ObjectDoesNotExist:
        return _answer(request, None, 404, _(RECORD_GONE))
    return _answer(request, instance, 409, _("This changed meanwhile: here is what it shows now."))


def _queried_record(request: HttpRequest) -> ImageGeneratingMixin | HttpResponse:
    """The record a GET's signed ``ref`` names, or the refusal to answer with."""
    try:
        return clicks.load(request.GET.get("ref", ""), stale=clicks.IMAGE_OUT_OF_DATE)
    except Refused as refused:
        return _refusal(refused.status, refused.message)


@never_cache
@require_GET
def panel(request: HttpRequest) -> HttpResponse:
    """The container as a panel: the prompt to read and edit before sending ("compose"), or the
    record's earlier pictures to restore ("earlier"). Editors only; nothing changes until they
    send it."""
    instance = _queried_record(request)
    if isinstance(instance, HttpResponse):
        return instance
    try:
        clicks.check_editor(request.user, instance)
    except Refused as refused:
        return _refusal(refused.status, refused.message)
    which = "earlier" if request.GET.get("show") == "earlier" else "compose"
    return _container(request, instance, 200, panel=which)


@never_cache
@require_GET
def fragment(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    """One container's current HTML, re-fetched when its record changes (or while polling).

    It shows exactly what the viewer's own page would: a job's progress and errors only to those
    who may generate, and to anyone else only the picture of a record the model's default manager
    shows (a row it hides, unpublished or soft-deleted, is "no longer exists" to them).
    """
    try:
        instance = clicks.viewable(request.user, request.GET.get("ref", ""))
    except Refused as refused:
        return _refusal(refused.status, refused.message)
    return _container(request, instance, 200)
