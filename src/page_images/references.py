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
from django.utils.crypto import salted_hmac

from page_images.exceptions import PageImagesError
from page_images.models import ImageGeneratingMixin

SALT = "page_images.record"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class BadReference(PageImagesError):
    """The reference was tampered with, malformed, or names a model that does not use the mixin."""


class RecordNotFound(PageImagesError):
    """The reference is genuine but its record no longer exists."""


class RecordSigner(signing.Signer):
    """The signer of record references, whose HMAC key is derived once rather than once per value.

    The signatures are ``Signer(salt=SALT)``'s own, byte for byte: ``signature`` is
    ``signing.base64_hmac(salt + "signer", value, key)``, but the key derivation inside
    ``salted_hmac`` (a hash of the secret) is done once per signer and the keyed HMAC copied for
    each value, so a page signs its hundreds of records with one signer. Any other key (a
    fallback, when unsigning) goes Django's way.
    """

    def __init__(self) -> None:
        super().__init__(salt=SALT)
        self._keyed = salted_hmac(SALT + "signer", b"", self.key, algorithm=self.algorithm)

    def signature(self, value: str | bytes, key: str | bytes | None = None) -> str:
        if key is not None and key != self.key:
            return super().signature(value, key)
        mac = self._keyed.copy()
        mac.update(value.encode() if isinstance(value, str) else value)
        return signing.b64_encode(mac.digest()).decode()


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
