"""What a container shows for one record: the context shared by the template tags and the views.

The trigger view, the fragment view and the tags must render the same markup for the same state, or
a reload would show something other than the live update did; so all three build it here.

A page may show hundreds of containers, so the work is split by how often it changes: what every
container of a page shares (two URLs, two labels, the page's own path) is worked out once per
request; values that can never need HTML-escaping (the state, the DOM key, the signed reference,
URLs without special characters) are marked safe, so the template does not escape them again; and
the permission check runs only if the template asks for it (a container showing a picture never
does). Measured on 200 containers, that halved the cost (docs/benchmarks.md, target 4).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from django.urls import reverse
from django.utils.safestring import SafeString
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from page_images.conf import app_settings
from page_images.permissions import can_generate
from page_images.references import event_key, sign_record

if TYPE_CHECKING:
    from django.http import HttpRequest

    from page_images.models import ImageGeneratingMixin

REFERENCES_ATTRIBUTE = "_page_images_references"
PAGE_ATTRIBUTE = "_page_images_page"
_STATES = {state: SafeString(state) for state in ("generating", "ready", "error", "empty")}


def remember(request: HttpRequest | None, reference: str) -> None:
    """Note a reference rendered on this page, for the one event stream the page opens."""
    if request is None:
        return
    # A dict as an ordered set: a page of hundreds of records must not cost a scan per record.
    seen: dict[str, None] = request.__dict__.setdefault(REFERENCES_ATTRIBUTE, {})
    seen[reference] = None


def rendered_references(request: HttpRequest | None) -> list[str]:
    if request is None:
        return []
    return list(request.__dict__.get(REFERENCES_ATTRIBUTE, {}))


def streaming_enabled(request: HttpRequest | None = None) -> bool:
    """Whether this page gets an event stream: a bus is configured and the server is ASGI.

    Under WSGI the stream view answers 404 (it would hold a thread forever), so pages served by
    WSGI poll instead, whatever EVENTS says.
    """
    if app_settings.EVENTS is None:
        return False
    from django.core.handlers.asgi import ASGIRequest

    return request is None or isinstance(request, ASGIRequest)


def _safe_if_plain(text: str) -> str:
    """``text`` marked safe when escaping would not change it; otherwise left to the template."""
    return SafeString(text) if html.escape(text) == text else text


class _Permission:
    """``can_generate(user, instance)``, asked only when a template tests it, then remembered.

    Truthy or falsy like the bool it stands for, so ``{% if can_generate %}`` and Python's ``if``
    both work; a container that shows a picture never tests it, and so costs no permission query.
    """

    __slots__ = ("_instance", "_user", "_value")

    def __init__(self, user: Any, instance: ImageGeneratingMixin) -> None:
        self._user = user
        self._instance = instance
        self._value: bool | None = None

    def __bool__(self) -> bool:
        if self._value is None:
            self._value = can_generate(self._user, self._instance)
        return self._value

    def __eq__(self, other: object) -> bool:
        return bool(self) == other

    def __hash__(self) -> int:
        return hash(bool(self))

    def __str__(self) -> str:
        return str(bool(self))

    def __repr__(self) -> str:
        return repr(bool(self))


def _page_context(request: HttpRequest | None) -> dict[str, Any]:
    """What every container of a page shares, worked out once per request (and language)."""
    language = get_language()
    page: dict[str, Any] | None = None
    if request is not None:
        page = request.__dict__.get(PAGE_ATTRIBUTE)
    if page is None or page["language"] != language:
        page = {
            "language": language,
            "trigger_url": _safe_if_plain(reverse("page_images:trigger")),
            "fragment_url": _safe_if_plain(reverse("page_images:fragment")),
            "next": request.get_full_path() if request is not None else "",
            "chip_label": _("✨ Generate image"),
            "retry_label": _("Try again"),
        }
        if request is not None:
            request.__dict__[PAGE_ATTRIBUTE] = page
    return page


def chip_context(
    request: HttpRequest | None,
    instance: ImageGeneratingMixin,
    *,
    user: Any = None,
    target: str,
    page: dict[str, Any] | None = None,
) -> dict[str, Any]:
    user = user if user is not None else getattr(request, "user", None)
    reference = instance.image_reference
    remember(request, reference)
    page = page if page is not None else _page_context(request)
    return {
        "instance": instance,
        # Signer output is base64 and ':' only: nothing to escape.
        "signed": SafeString(sign_record(instance)),
        "trigger_url": page["trigger_url"],
        "next": page["next"],
        "target": target,
        "can_generate": _Permission(user, instance),
        "chip_label": page["chip_label"],
        "retry_label": page["retry_label"],
    }


def container_context(
    request: HttpRequest | None,
    instance: ImageGeneratingMixin,
    *,
    message: str = "",
    user: Any = None,
) -> dict[str, Any]:
    page = _page_context(request)
    context = chip_context(request, instance, user=user, target="closest .page-images", page=page)
    state = instance.image_state
    poll = state == "generating" and not streaming_enabled(request)
    context.update(
        {
            "state": _STATES.get(state, state),
            # event_key keeps letters, digits, '_' and '-' only.
            "key": SafeString(event_key(instance.image_reference)),
            "fragment_url": page["fragment_url"],
            "image_url": instance.image_file.url if state == "ready" else "",
            "alt": instance.get_image_alt_text(),
            "error": instance.image_error,
            "message": message,
            "claimed_at": instance.image_claimed_at,
            "poll_ms": int(app_settings.POLL_INTERVAL * 1000) if poll else None,
        }
    )
    return context
