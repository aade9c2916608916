"""What a container shows for one record: the context shared by the template tags and the views.

The trigger view, the fragment view and the tags must render the same markup for the same state, or
a reload would show something other than the live update did; so all three build it here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.urls import reverse
from django.utils.translation import gettext as _

from page_images.conf import app_settings
from page_images.permissions import can_generate
from page_images.references import event_key, sign_record

if TYPE_CHECKING:
    from django.http import HttpRequest

    from page_images.models import ImageGeneratingMixin

REFERENCES_ATTRIBUTE = "_page_images_references"


def remember(request: HttpRequest | None, reference: str) -> None:
    """Note a reference rendered on this page, for the one event stream the page opens."""
    if request is None:
        return
    seen: list[str] = request.__dict__.setdefault(REFERENCES_ATTRIBUTE, [])
    if reference not in seen:
        seen.append(reference)


def rendered_references(request: HttpRequest | None) -> list[str]:
    if request is None:
        return []
    return list(request.__dict__.get(REFERENCES_ATTRIBUTE, []))


def streaming_enabled(request: HttpRequest | None = None) -> bool:
    """Whether this page gets an event stream: a bus is configured and the server is ASGI.

    Under WSGI the stream view answers 404 (it would hold a thread forever), so pages served by
    WSGI poll instead, whatever EVENTS says.
    """
    if app_settings.EVENTS is None:
        return False
    from django.core.handlers.asgi import ASGIRequest

    return request is None or isinstance(request, ASGIRequest)


def chip_context(
    request: HttpRequest | None, instance: ImageGeneratingMixin, *, user: Any = None, target: str
) -> dict[str, Any]:
    user = user if user is not None else getattr(request, "user", None)
    remember(request, instance.image_reference)
    return {
        "instance": instance,
        "signed": sign_record(instance),
        "trigger_url": reverse("page_images:trigger"),
        "next": request.get_full_path() if request is not None else "",
        "target": target,
        "can_generate": can_generate(user, instance),
        "chip_label": _("✨ Generate image"),
        "retry_label": _("Try again"),
    }


def container_context(
    request: HttpRequest | None,
    instance: ImageGeneratingMixin,
    *,
    message: str = "",
    user: Any = None,
) -> dict[str, Any]:
    context = chip_context(request, instance, user=user, target="closest .page-images")
    state = instance.image_state
    poll = state == "generating" and not streaming_enabled(request)
    image = instance.image_file
    context.update(
        {
            "state": state,
            "key": event_key(instance.image_reference),
            "fragment_url": reverse("page_images:fragment"),
            "image_url": image.url if state == "ready" else "",
            "alt": instance.get_image_alt_text(),
            "error": instance.image_error,
            "message": message,
            "claimed_at": instance.image_claimed_at,
            "poll_ms": int(app_settings.POLL_INTERVAL * 1000) if poll else None,
        }
    )
    return context
