"""What a click asks, checked and answered the same way whichever endpoint receives it.

The views (:mod:`page_images.views`) and the django-ninja router (:mod:`page_images.api`) are two
doors to the same rules: the size of a request, the signed reference, who may generate, the rate
limit, and which status and message each refusal gets. Each rule lives here once, as a function
that returns the record or raises :class:`Refused`; each door only turns a refusal into its own
kind of answer (a container for htmx, a redirect, JSON). A rule written twice would drift, and
the door that drifted would be the way around the other's check.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ObjectDoesNotExist
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from page_images import ratelimit
from page_images.conf import app_settings
from page_images.exceptions import (
    EmptyPromptError,
    EnqueueError,
    InvalidChoiceError,
    PageImagesError,
    QuotaExceededError,
)
from page_images.permissions import can_generate
from page_images.queueing import request_generation
from page_images.references import BadReference, RecordNotFound, load_record
from page_images.specs import reviewing
from page_images.wording import shown

if TYPE_CHECKING:
    import uuid

    from page_images.models import ImageGeneratingMixin

logger = logging.getLogger(__name__)

#: A trigger POST holds a CSRF token, a reference and a path: anything bigger is not from our chip.
MAX_BODY_BYTES = 4096

RECORD_GONE = gettext_noop("This record no longer exists.")
OUT_OF_DATE = gettext_noop("This button is out of date. Reload the page.")
IMAGE_OUT_OF_DATE = gettext_noop("This image is out of date. Reload the page.")
NOT_ALLOWED = gettext_noop("You may not generate an image for this record.")
TOO_MANY = gettext_noop("Too many images requested. Wait a minute and try again.")
RATE_LIMIT_DOWN = gettext_noop(
    "Clicks cannot be counted right now (the site's cache is unreachable). Try again in a moment."
)
UNREADABLE = gettext_noop("The request could not be read.")
TOO_LARGE = gettext_noop("The request was too large.")


class Refused(PageImagesError):
    """A click that is answered with a 4xx or 503 and queues nothing.

    ``instance`` is the record when one was loaded (its container can show the message in
    place), None when the reference named none. The exception it was raised from, if any, is
    its ``__cause__``, for a door that answers one cause its own way (the prompt panel).
    """

    def __init__(
        self, status: int, message: str, instance: ImageGeneratingMixin | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.instance = instance


def max_body_bytes() -> int:
    """The largest POST a container sends: the chip's fields, plus a prompt from the panel (up
    to MAX_PROMPT_LENGTH characters of up to 4 bytes each, percent-encoded at worst)."""
    if not app_settings.PROMPT_PANEL:
        return MAX_BODY_BYTES
    return MAX_BODY_BYTES + 12 * app_settings.MAX_PROMPT_LENGTH


def check_length(content_length: str | None) -> None:
    """Refuse a body too large for a click, before it is read (a 400, never a parse of it)."""
    try:
        length = int(content_length or 0)
    except ValueError:
        raise Refused(400, _(UNREADABLE)) from None
    if length > max_body_bytes():
        raise Refused(400, _(TOO_LARGE))


def load(reference: str, *, stale: str = OUT_OF_DATE) -> ImageGeneratingMixin:
    """The record a signed reference names; ``stale`` is the message for a bad one (400)."""
    try:
        return load_record(reference)
    except BadReference:
        raise Refused(400, _(stale)) from None
    except RecordNotFound:
        raise Refused(404, _(RECORD_GONE)) from None


def check_editor(user: Any, instance: ImageGeneratingMixin) -> None:
    """Refuse (403) a user who may not generate for ``instance``: anonymous users never may."""
    if not can_generate(user, instance):
        raise Refused(403, _(NOT_ALLOWED), instance)


def editable(user: Any, reference: str) -> ImageGeneratingMixin:
    """The record a button's POST names, once its reference and the user's permission passed.

    Shared by every button (generate, try again, cancel, the review's), so no button is a way
    around another's checks.
    """
    instance = load(reference)
    check_editor(user, instance)
    return instance


def viewable(user: Any, reference: str) -> ImageGeneratingMixin:
    """The record a GET's reference names, as the viewer's own page would show it.

    Editors see any record they may generate for; anyone else only a record that the model's
    default manager shows (a row it hides, unpublished or soft-deleted, is "no longer exists").
    """
    instance = load(reference, stale=IMAGE_OUT_OF_DATE)
    if not can_generate(user, instance) and not (
        type(instance)._default_manager.filter(pk=instance.pk).exists()
    ):
        raise Refused(404, _(RECORD_GONE))
    return instance


def count_click(user: Any, instance: ImageGeneratingMixin) -> None:
    """Count the click against the user's rate limit; refuse it past the limit (429) or when
    the cache that counts is down (503: a click can be neither counted nor let through)."""
    try:
        allowed = ratelimit.allow(user)
    except ratelimit.RateLimitUnavailable as exc:
        logger.exception("page_images: the rate limit's cache failed; click refused")
        raise Refused(503, _(RATE_LIMIT_DOWN), instance) from exc
    if not allowed:
        raise Refused(429, _(TOO_MANY), instance)


def start(
    instance: ImageGeneratingMixin,
    user: Any,
    *,
    prompt: str | None = None,
    preset: str | None = None,
    aspect_ratio: str | None = None,
    replace: bool = False,
) -> uuid.UUID | None:
    """Count the click, claim the record and queue its job; the job's token, or None.

    None when nothing was queued because another click's job is running or its picture has
    landed since the page was drawn: ``instance`` is then re-read, so the answer shows that, not
    the chip the editor saw. ``prompt`` counts only where the site offers the panel, ``replace``
    only where it offers Regenerate (the chip never generates over a picture).
    """
    count_click(user, instance)
    try:
        token = request_generation(
            instance,
            user=user,
            replace=replace and (app_settings.REGENERATE or reviewing()),
            prompt=prompt if app_settings.PROMPT_PANEL else None,
            preset=preset or None,
            aspect_ratio=aspect_ratio or None,
            enforce_quota=True,
        )
    except QuotaExceededError as exc:  # nothing claimed or queued (quotas.py)
        raise Refused(429, exc.user_message, instance) from exc
    except InvalidChoiceError as exc:
        raise Refused(400, str(exc), instance) from exc
    # Their sentences are stored on the record in English (the worker has no language): the
    # editor reads them in theirs (page_images.wording).
    except EmptyPromptError as exc:
        raise Refused(400, shown(str(exc)), instance) from exc
    except EnqueueError as exc:
        raise Refused(503, shown(str(exc)), instance) from exc
    if token is None:
        try:
            instance.refresh_from_db()
        except ObjectDoesNotExist:
            raise Refused(404, _(RECORD_GONE)) from None
    return token
