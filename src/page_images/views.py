"""The trigger view (the chip's POST) and the fragment view (a container's re-fetch).

The trigger view only validates and claims: the job runs in a worker, so the request costs a few
milliseconds however long the provider takes. It answers htmx with the container's new HTML,
whatever happened, including refusals, so the editor reads the reason where they clicked; a plain
POST (no JavaScript) gets a redirect back. Every refusal is a 4xx with no job queued, never a 500.
"""

from __future__ import annotations

import logging
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
from django.utils.translation import gettext_noop
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from page_images import claims, pictures, ratelimit
from page_images.conf import app_settings
from page_images.exceptions import (
    EmptyPromptError,
    EnqueueError,
    InvalidChoiceError,
    QuotaExceededError,
)
from page_images.permissions import can_generate
from page_images.queueing import request_generation
from page_images.references import BadReference, RecordNotFound, load_record
from page_images.rendering import container_context
from page_images.specs import reviewing
from page_images.wording import shown

if TYPE_CHECKING:
    from collections.abc import Callable

    from page_images.models import ImageGeneratingMixin

logger = logging.getLogger(__name__)

#: A trigger POST holds a CSRF token, a reference and a path: anything bigger is not from our chip.
MAX_BODY_BYTES = 4096


def max_body_bytes() -> int:
    """The largest POST a container sends: the chip's fields, plus a prompt from the panel (up
    to MAX_PROMPT_LENGTH characters of up to 4 bytes each, percent-encoded at worst)."""
    if not app_settings.PROMPT_PANEL:
        return MAX_BODY_BYTES
    return MAX_BODY_BYTES + 12 * app_settings.MAX_PROMPT_LENGTH


RECORD_GONE = gettext_noop("This record no longer exists.")
OUT_OF_DATE = gettext_noop("This button is out of date. Reload the page.")
RATE_LIMIT_DOWN = gettext_noop(
    "Clicks cannot be counted right now (the site's cache is unreachable). Try again in a moment."
)


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _declared_length(request: HttpRequest) -> int | None:
    """The body's declared size; None when the Content-Length header is not a number."""
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None


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
    if _is_htmx(request):
        if instance is None:
            return _refusal(status, message)
        return _container(request, instance, status, message)
    if message and apps.is_installed("django.contrib.messages"):
        messages.add_message(
            request, messages.INFO if status < 400 else messages.ERROR, message, fail_silently=True
        )
    return _back(request)


def _posted_record(request: HttpRequest) -> ImageGeneratingMixin | HttpResponse:
    """The record a chip's POST names, once the request passed every check; else the answer.

    Shared by every button of a container (generate, try again, cancel): the same size limit,
    login, signed reference and permission, so no button is a way around another's checks.
    """
    length = _declared_length(request)
    if length is None:
        return _refusal(400, _("The request could not be read."))
    if length > max_body_bytes():
        return _refusal(400, _("The request was too large."))
    try:
        form = request.POST
    except LookupError:
        # Django's multipart parser raises this for a charset that names no text encoding
        # ("charset=rot13"); Django answers its other parse errors with a 400 by itself.
        return _refusal(400, _("The request could not be read."))
    if not request.user.is_authenticated and not _is_htmx(request):
        return redirect_to_login(form.get("next") or "/")
    try:
        instance = load_record(form.get("ref", ""))
    except BadReference:
        return _answer(request, None, 400, _(OUT_OF_DATE))
    except RecordNotFound:
        return _answer(request, None, 404, _(RECORD_GONE))
    if not can_generate(request.user, instance):
        return _answer(request, instance, 403, _("You may not generate an image for this record."))
    return instance


@require_POST
def trigger(request: HttpRequest) -> HttpResponse:
    """Claim the record and queue its job; answer with the container in its new state."""
    found = _posted_record(request)
    if isinstance(found, HttpResponse):
        return found
    instance = found
    try:
        allowed = ratelimit.allow(request.user)
    except ratelimit.RateLimitUnavailable:
        logger.exception("page_images: the rate limit's cache failed; click refused")
        return _answer(request, instance, 503, _(RATE_LIMIT_DOWN))
    if not allowed:
        return _answer(
            request, instance, 429, _("Too many images requested. Wait a minute and try again.")
        )
    form = request.POST
    prompt = form.get("prompt") if app_settings.PROMPT_PANEL else None
    # "Regenerate" replaces a picture on purpose; the chip never does (a click that loses the
    # race to a landing picture shows that picture rather than paying for a second one).
    replace = form.get("replace") == "1" and (app_settings.REGENERATE or reviewing())
    try:
        token = request_generation(
            instance,
            user=request.user,
            replace=replace,
            prompt=prompt,
            preset=form.get("preset") or None,
            aspect_ratio=form.get("aspect_ratio") or None,
            enforce_quota=True,
        )
    except QuotaExceededError as exc:  # nothing claimed or queued (quotas.py)
        return _answer(request, instance, 429, exc.user_message)
    except EmptyPromptError as exc:
        return _answer(request, instance, 400, shown(str(exc)))
    except InvalidChoiceError as exc:
        if _is_htmx(request) and prompt is not None:  # back to the panel, with what was typed
            return _container(request, instance, 400, str(exc), panel="compose", prompt=prompt)
        return _answer(request, instance, 400, str(exc))
    except EnqueueError as exc:
        return _answer(request, instance, 503, shown(str(exc)))
    if token is None:
        # Another click's job is running, or its picture has landed since this page was drawn:
        # show that, not the chip this editor saw, and queue nothing.
        try:
            instance.refresh_from_db()
        except ObjectDoesNotExist:
            return _answer(request, None, 404, _(RECORD_GONE))
    return _answer(request, instance, 200)


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
        return load_record(request.GET.get("ref", ""))
    except BadReference:
        return _refusal(400, _("This image is out of date. Reload the page."))
    except RecordNotFound:
        return _refusal(404, _(RECORD_GONE))


@never_cache
@require_GET
def panel(request: HttpRequest) -> HttpResponse:
    """The container as a panel: the prompt to read and edit before sending ("compose"), or the
    record's earlier pictures to restore ("earlier"). Editors only; nothing changes until they
    send it."""
    instance = _queried_record(request)
    if isinstance(instance, HttpResponse):
        return instance
    if not can_generate(request.user, instance):
        return _refusal(403, _("You may not generate an image for this record."))
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
    instance = _queried_record(request)
    if isinstance(instance, HttpResponse):
        return instance
    if not can_generate(request.user, instance) and not (
        type(instance)._default_manager.filter(pk=instance.pk).exists()
    ):
        return _refusal(404, _(RECORD_GONE))
    return _container(request, instance, 200)
