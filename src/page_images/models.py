"""The abstract mixin that lets any model have an AI illustration.

The mixin owns the bookkeeping that makes "nothing is ever stuck" possible: ``image_generating`` is
the seed's flag, and beside it the claim's start time (so a dead job's claim can be recognised as
stale), a claim token (so a stale job can never overwrite a newer picture) and the last error in
words an editor can act on, and whether candidates wait for an editor's choice. The host's model
gets these columns in its own migration. The app's own tables, the history of every generation
and the files it made, live in :mod:`page_images.history` (with the app's migrations) and are
found by Django through this module.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from django.apps import apps
from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from page_images.conf import app_settings
from page_images.exceptions import PageImagesConfigurationError

# The app's own tables live in their own module; Django finds models through this one.
from page_images.history import Generation, Picture
from page_images.permissions import default_permission
from page_images.wording import shown

if TYPE_CHECKING:
    from django.db.models.fields.files import FieldFile

__all__ = [
    "STALE_CLAIM_MESSAGE",
    "Generation",
    "ImageGeneratingMixin",
    "Picture",
    "image_field",
    "image_generating_models",
    "image_upload_to",
]

#: What a record shows when its job was presumed dead (a killed worker, a lost queue).
STALE_CLAIM_MESSAGE = gettext_noop("The image job did not finish in time. Try again.")


def image_upload_to(instance: models.Model, filename: str) -> str:
    """Keep generated files apart per model: ``page_images/<app>/<model>/<file>``."""
    meta = instance._meta
    return f"{app_settings.UPLOAD_TO}/{meta.app_label}/{meta.model_name}/{filename}"


class ImageGeneratingMixin(models.Model):
    """Mix into a model to give it a generated image.

    Say where the prompt comes from, either with ``image_prompt_field = "image_text"`` or by
    overriding :meth:`get_image_prompt`. A model that already has an image field names it with
    ``image_field_name = "picture"``; the mixin then adds no ``image`` field of its own.
    """

    image = models.ImageField(_("image"), upload_to=image_upload_to, blank=True, max_length=255)
    image_generating = models.BooleanField(_("generating image"), default=False, editable=False)
    image_claimed_at = models.DateTimeField(
        _("image job started at"), null=True, blank=True, editable=False
    )
    image_started_at = models.DateTimeField(
        _("image job running since"), null=True, blank=True, editable=False
    )
    image_claim_token = models.UUIDField(
        _("image job token"), null=True, blank=True, editable=False
    )
    image_error = models.TextField(_("last image error"), blank=True, editable=False)
    image_review = models.BooleanField(
        _("image candidates awaiting review"), default=False, editable=False
    )

    #: The name of the field that holds the picture.
    image_field_name: ClassVar[str] = "image"
    #: The name of the field whose text is the prompt; or override :meth:`get_image_prompt`.
    image_prompt_field: ClassVar[str | None] = None
    #: The name of a CharField or TextField of the model that holds the picture's alt text: the
    #: templates show it, editors may change it, and the job writes it when ALT_TEXT is set or
    #: :meth:`describe_image` is overridden. None: the picture is shown as decorative (``alt=""``).
    image_alt_text_field: ClassVar[str | None] = None

    class Meta:
        abstract = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A model with its own image field must not grow a second, unused ``image`` column.
        # Django skips an abstract parent's field when the child's namespace already holds the
        # name, so setting it to None here is the documented ``image = None`` done for the user.
        if cls.image_field_name != "image" and "image" not in cls.__dict__:
            cls.image = None  # type: ignore[assignment]

    def get_image_prompt(self) -> str:
        """The text the picture is made from. Override for prompts built from several fields."""
        if not self.image_prompt_field:
            raise PageImagesConfigurationError(
                f"{type(self).__name__} has no prompt: set image_prompt_field to a field name, "
                "or override get_image_prompt()."
            )
        value = getattr(self, self.image_prompt_field)
        return "" if value is None else str(value).strip()

    def get_image_alt_text(self) -> str:
        """The ``<img>``'s ``alt``: the text in ``image_alt_text_field``, else ``""``.

        Not the prompt: the prompt is the record's own text, usually printed beside the picture,
        so a screen reader would read the paragraph twice, and it says what was asked for, not
        what was drawn. An empty ``alt`` marks the picture as decorative, which is what an
        illustration of the text next to it is until someone (a vision model, the model's own
        :meth:`describe_image`, an editor) says what it shows. Override for other sources.
        """
        if not self.image_alt_text_field:
            return ""
        value = getattr(self, self.image_alt_text_field, None)
        return "" if value is None else str(value).strip()

    def get_image_language(self) -> str:
        """The language code the alt text is written in: the site's ``LANGUAGE_CODE``.

        Override on a multilingual site whose records each have their own language.
        """
        return str(settings.LANGUAGE_CODE)

    def describe_image(self, image_bytes: bytes, *, language: str) -> str | None:
        """Write this picture's alt text yourself (in ``language``); None asks ALT_TEXT's model.

        Runs in the worker once the picture is stored, for each new picture or candidate, and is
        given as long as ``ALT_TEXT["TIMEOUT"]``; what it raises is logged and the alt text left
        empty, never the picture's failure. Return ``""`` for a picture that is decorative.
        """
        return None

    def can_generate_image(self, user: Any) -> bool:
        """May ``user`` generate this record's image? Override for a rule of the model's own."""
        return default_permission(user, self)

    def get_image_channel(self) -> str:
        """Where this record's changes are announced: the ``<channel>`` of ``job:<channel>:…``.

        The seed used the story's channel; the default is the model's label.
        """
        return self._meta.label_lower

    @property
    def image_file(self) -> FieldFile:
        """The picture field's file, whatever the field is called."""
        file: FieldFile = getattr(self, self.image_field_name)
        return file

    @property
    def image_reference(self) -> str:
        """The record's stable text id, ``"<app_label>.<model_name>:<pk>"``, for logs and events."""
        return f"{self._meta.label_lower}:{self.pk}"

    @property
    def image_job_deadline(self) -> datetime | None:
        """When the current job is presumed dead if it has not ended; None when there is none.

        A running job has ``CLAIM_TIMEOUT`` seconds from the start of its attempt; a job waiting in
        the queue has ``QUEUE_TIMEOUT`` from the click, since waiting behind a backfill is not
        dying. A claim with no time at all (written by hand) is presumed dead already.
        """
        if not self.image_generating:
            return None
        if self.image_started_at is not None:
            return self.image_started_at + timedelta(seconds=app_settings.CLAIM_TIMEOUT)
        if self.image_claimed_at is not None:
            return self.image_claimed_at + timedelta(seconds=app_settings.QUEUE_TIMEOUT)
        return timezone.now()

    @property
    def image_job_lost(self) -> bool:
        """Whether the record is claimed by a job presumed dead: its page offers "Try again"."""
        deadline = self.image_job_deadline
        return deadline is not None and deadline <= timezone.now()

    @property
    def image_state(self) -> str:
        """One of ``"generating"``, ``"review"``, ``"ready"``, ``"error"``, ``"empty"``.

        A job presumed dead no longer shows as generating: the editor gets the record's picture,
        or an error to retry, without anyone running a command. ``"review"`` (candidates waiting
        for an editor's choice) is an editor's state: visitors see the live picture, or none.
        """
        if self.image_generating and not self.image_job_lost:
            return "generating"
        if self.image_review and not self.image_generating:
            return "review"
        if self.image_file:
            return "ready"
        if self.image_error or self.image_generating:
            return "error"
        return "empty"

    @property
    def image_error_message(self) -> str:
        """What the error state says, in the active language: the recorded error, or that the job
        was presumed dead (the record stores the English sentence: page_images.wording)."""
        if self.image_error:
            return shown(self.image_error)
        return shown(STALE_CLAIM_MESSAGE) if self.image_generating else ""


def image_field(instance: ImageGeneratingMixin) -> models.FileField:
    """The record's picture field, whatever it is called: its storage holds the pictures (and the
    previews) of the record."""
    field = instance._meta.get_field(instance.image_field_name)
    if not isinstance(field, models.FileField):  # system check E010 reports this at start-up
        raise TypeError(f"{instance._meta.label}.{instance.image_field_name} is not a FileField")
    return field


def image_generating_models() -> list[type[ImageGeneratingMixin]]:
    """Every installed concrete model that uses the mixin: the only models the app will touch."""
    return [
        model
        for model in apps.get_models()
        if issubclass(model, ImageGeneratingMixin) and not model._meta.abstract
    ]
