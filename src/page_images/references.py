"""Signed references: how a page names a record to the trigger view without trusting the browser.

The chip never carries a raw model name and primary key: a browser could change them to reach any
row of any table. It carries ``"<app_label>.<model_name>:<pk>"`` signed with the site's SECRET_KEY,
and only models that use the mixin resolve. A reference is not bound to a user: pages are cached and
shared, and the permission check in the view, not the reference, decides who may act.
"""

from __future__ import annotations

import re

from django.apps import apps
from django.core import signing
from django.core.exceptions import ValidationError

from page_images.exceptions import PageImagesError
from page_images.models import ImageGeneratingMixin
from page_images.signer import RecordSigner

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class BadReference(PageImagesError):
    """The reference was tampered with, malformed, or names a model that does not use the mixin."""


class RecordNotFound(PageImagesError):
    """The reference is genuine but its record no longer exists."""


def sign_record(instance: ImageGeneratingMixin) -> str:
    """The signed reference a page carries for ``instance`` (the chip's ``ref``)."""
    return RecordSigner().sign(instance.image_reference)


def event_key(reference: str) -> str:
    """A DOM-safe name for a reference, used in htmx trigger names.

    The markup carries it (``data-page-images-key``) beside the reference, so the script looks it
    up there rather than deriving it again.
    """
    return _UNSAFE.sub("-", reference)


def load_record(token: str) -> ImageGeneratingMixin:
    """The record a signed reference names; raises BadReference or RecordNotFound."""
    try:
        reference = RecordSigner().unsign(str(token))
    except signing.BadSignature as exc:
        raise BadReference("The reference is not valid.") from exc
    label, _, pk = reference.rpartition(":")
    try:
        model = apps.get_model(label)
    except (LookupError, ValueError) as exc:
        raise BadReference(f"No model {label!r}.") from exc
    if not issubclass(model, ImageGeneratingMixin):
        raise BadReference(f"{label} does not generate images.")
    try:
        return model._base_manager.get(pk=pk)
    except (model.DoesNotExist, ValidationError, ValueError, TypeError) as exc:
        raise RecordNotFound(f"{reference} does not exist.") from exc
