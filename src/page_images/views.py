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

from page_images import claims, ratelimit
from page_images.exceptions import EmptyPromptError, EnqueueError
from page_images.permissions import can_generate
from page_images.queueing import request_generation
from page_images.references import BadReference, RecordNotFound, load_record
from page_images.rendering import container_context

if TYPE_CHECKING:
    from page_images.models import ImageGeneratingMixin

logger = logging.getLogger(__name__)

#: A trigger POST holds a CSRF token, a reference and a path: anything bigger is not from our chip.
MAX_BODY_BYTES = 4096

RECORD_GONE = gettext_noop("This record no longer exists.")
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
    request: HttpRequest, instance: ImageGeneratingMixin, status: int, message: str = ""
) -> HttpResponse:
    if message == instance.image_error:
        message = ""  # the record shows it already (a broker failure is recorded on it)
    html = render_to_string(
        "page_images/container.html", container_context(request, instance, message=message), request
    )
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
    if length > MAX_BODY_BYTES:
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
        return _answer(request, None, 400, _("This button is out of date. Reload the page."))
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
    try:
        token = request_generation(instance, user=request.user, replace=False)
    except EmptyPromptError as exc:
        return _answer(request, instance, 400, str(exc))
    except EnqueueError as exc:
        return _answer(request, instance, 503, str(exc))
    if token is None:
        # Another click's job is running, or its picture has landed since this page was drawn:
        # show that, not the chip this editor saw, and queue nothing.
        try:
            instance.refresh_from_db()
        except ObjectDoesNotExist:
            return _answer(request, None, 404, _(RECORD_GONE))
    return _answer(request, instance, 200)


@require_POST
def cancel(request: HttpRequest) -> HttpResponse:
    """Give up the record's running or queued job; answer with the container as it is now.

    The job is not killed: it finds its claim gone and discards what it makes. The editor is not
    left waiting on a job that a dead worker or a lost queue will never finish.
    """
    found = _posted_record(request)
    if isinstance(found, HttpResponse):
        return found
    claims.cancel(found)
    return _answer(request, found, 200)


@never_cache
@require_GET
def fragment(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    """One container's current HTML, re-fetched when its record changes (or while polling).

    It shows exactly what the viewer's own page would: a job's progress and errors only to those
    who may generate, and to anyone else only the picture of a record the model's default manager
    shows (a row it hides, unpublished or soft-deleted, is "no longer exists" to them).
    """
    try:
        instance = load_record(request.GET.get("ref", ""))
    except BadReference:
        return _refusal(400, _("This image is out of date. Reload the page."))
    except RecordNotFound:
        return _refusal(404, _(RECORD_GONE))
    if not can_generate(request.user, instance) and not (
        type(instance)._default_manager.filter(pk=instance.pk).exists()
    ):
        return _refusal(404, _(RECORD_GONE))
    return _container(request, instance, 200)
