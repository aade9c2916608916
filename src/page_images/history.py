"""The app's own tables: every generation asked for, and every file one produced.

The mixin's columns say what a record shows now; these say how it got there. A ``Generation`` is
one click (or one record of a backfill): who asked, the prompt that was sent, the preset, the
backend and model, how long it took, what it cost and how it ended. A ``Picture`` is one file a
generation made, kept for as long as it may still be wanted: a candidate waiting for an editor's
choice, or an earlier picture of the record that "Restore" can bring back.

Records of any model are reached through a content type and the primary key as text, so one table
serves every model that uses the mixin, whatever its key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

if TYPE_CHECKING:
    from datetime import timedelta

    from django.core.files.storage import Storage


class RecordQuerySet(models.QuerySet[Any]):
    """Rows about one record, found the way the history's indexes expect."""

    def of(self, record: models.Model) -> RecordQuerySet:
        return self.filter(content_type=content_type_of(record), object_id=str(record.pk))


def content_type_of(record: models.Model) -> ContentType:
    """The record's own model's content type (a proxy's, not its concrete model's): cached by
    Django after the first call of a process."""
    return _content_type(type(record), record._state.db)


class Generation(models.Model):
    """One request for pictures for one record, from the click to its outcome."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("running")
        #: Candidates wait for an editor to pick one; the live picture is untouched meanwhile.
        REVIEW = "review", _("waiting for review")
        DONE = "done", _("done")
        FAILED = "failed", _("failed")
        #: Cancelled by an editor, or its candidates discarded, or replaced by a newer click.
        CANCELLED = "cancelled", _("cancelled")

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    object_id = models.CharField(_("record id"), max_length=64)
    record = GenericForeignKey("content_type", "object_id")
    #: The claim token of the job: what ties the row to the job that fills it in.
    token = models.UUIDField(_("job token"), db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("requested by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    #: What was sent to the model: the record's prompt, or the editor's, with the preset's words.
    prompt = models.TextField(_("prompt"))
    #: What the picture should show, before the preset's words: the record's prompt when the
    #: click was made (the picture is stale if that changes), or the editor's own.
    subject = models.TextField(_("subject"), blank=True)
    #: The editor changed the prompt before sending it (the record's text then does not matter).
    prompt_edited = models.BooleanField(_("prompt edited"), default=False)
    preset = models.CharField(_("preset"), max_length=64, blank=True)
    aspect_ratio = models.CharField(_("aspect ratio"), max_length=16, blank=True)
    size = models.CharField(_("size"), max_length=16, blank=True)
    quality = models.CharField(_("quality"), max_length=16, blank=True)
    variants = models.PositiveSmallIntegerField(_("pictures asked for"), default=1)
    #: The pictures wait for an editor's choice instead of replacing the live one.
    review = models.BooleanField(_("review before publishing"), default=False)
    backend = models.CharField(_("backend"), max_length=200, blank=True)
    model = models.CharField(_("model"), max_length=200, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.QUEUED
    )
    error = models.TextField(_("error"), blank=True)
    #: The latest rough version of the picture while it is drawn (PREVIEWS), in the record's
    #: image storage: shown by the generating container, deleted when the attempt ends.
    preview = models.CharField(_("preview"), max_length=255, blank=True, editable=False)
    created_at = models.DateTimeField(_("requested at"), auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    #: What the pictures cost in USD by the site's price table (PAGE_IMAGES["PRICES"]).
    cost = models.DecimalField(_("cost (USD)"), max_digits=10, decimal_places=4, null=True)
    #: What the pictures were expected to cost when they were asked for: what a quota counts for
    #: a generation still queued or running, so that a burst of clicks cannot overshoot a budget.
    estimated_cost = models.DecimalField(
        _("estimated cost (USD)"), max_digits=10, decimal_places=4, null=True, blank=True
    )
    #: What the provider said it cost, when it did: often missing or wrong, so kept apart.
    provider_cost = models.DecimalField(
        _("provider's cost (USD)"), max_digits=10, decimal_places=4, null=True
    )

    objects = RecordQuerySet.as_manager()

    class Meta:
        verbose_name = _("image generation")
        verbose_name_plural = _("image generations")
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(
                fields=["content_type", "object_id", "-created_at"], name="page_images_gen_record"
            ),
            models.Index(fields=["user", "created_at"], name="page_images_gen_user"),
        ]

    def __str__(self) -> str:
        return f"{self.content_type_id}:{self.object_id} {self.status} {self.created_at:%Y-%m-%d}"

    @property
    def duration(self) -> timedelta | None:
        """From the start of the last attempt to the outcome: the wait an editor had."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


class Picture(models.Model):
    """One file a generation made (or a picture it replaced), while it may still be wanted.

    The file lives in the storage of the record's image field, under ``name``; the record shows
    it when its field holds that name. Rows whose file was deleted are deleted with it.
    """

    class Status(models.TextChoices):
        #: Made for review: shown to editors as a choice, never to visitors.
        CANDIDATE = "candidate", _("candidate")
        #: Has been the record's picture: live now, or kept so that it can be restored.
        KEPT = "kept", _("kept")

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    object_id = models.CharField(_("record id"), max_length=64)
    record = GenericForeignKey("content_type", "object_id")
    generation = models.ForeignKey(
        Generation,
        verbose_name=_("generation"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="pictures",
    )
    name = models.CharField(_("file"), max_length=255)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices)
    created_at = models.DateTimeField(_("made at"), auto_now_add=True)
    #: Written by a vision model or the site's own hook, checked by the editor when they accept.
    alt_text = models.TextField(_("alt text"), blank=True)

    objects = RecordQuerySet.as_manager()

    class Meta:
        verbose_name = _("generated picture")
        verbose_name_plural = _("generated pictures")
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(
                fields=["content_type", "object_id", "-created_at"], name="page_images_pic_record"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def url(self, storage: Storage) -> str:
        return storage.url(self.name)


def _content_type(model: type[models.Model], using: str | None = None) -> ContentType:
    return ContentType.objects.db_manager(using).get_for_model(model, for_concrete_model=False)


def generations_of_job(model: type[models.Model], pk: Any, token: Any) -> RecordQuerySet:
    """The history row(s) of the job holding ``token`` on the record ``model``/``pk``."""
    return Generation.objects.filter(
        content_type=_content_type(model), object_id=str(pk), token=token
    )


def record_start(model: type[models.Model], pk: Any, token: Any) -> Generation | None:
    """An attempt of the job starts now (the duration counts from here); its history row.

    Generations of the record still open under another token lost their claim to this job (it
    holds the claim now), so the same UPDATE closes them as abandoned: in the worker, not in the
    click, and one statement for both.
    """
    now = timezone.now()
    mine = Q(token=token)
    Generation.objects.filter(
        content_type=_content_type(model), object_id=str(pk), status__in=OPEN
    ).update(
        status=Case(
            When(mine, then=Value(Generation.Status.RUNNING)),
            default=Value(Generation.Status.FAILED),
            output_field=models.CharField(),
        ),
        started_at=Case(
            When(mine, then=Value(now)),
            default=F("started_at"),
            output_field=models.DateTimeField(),
        ),
        finished_at=Case(
            When(mine, then=F("finished_at")),
            default=Value(now),
            output_field=models.DateTimeField(),
        ),
        error=Case(
            When(mine, then=F("error")),
            default=Value(ABANDONED_MESSAGE),
            output_field=models.TextField(),
        ),
    )
    return generations_of_job(model, pk, token).first()


def record_outcome(
    model: type[models.Model], pk: Any, token: Any, status: str, /, **fields: Any
) -> int:
    """Write how a job ended into its history row; the rows written (0 for a job without one).

    Only rows still open are written: a generation an editor cancelled stays cancelled, whatever
    its job later finds.
    """
    return (
        generations_of_job(model, pk, token)
        .filter(status__in=OPEN)
        .update(status=status, finished_at=timezone.now(), **fields)
    )


def close_open(record: models.Model, status: str, *, error: str = "") -> int:
    """Close the record's queued and running generations as ``status``: cancelled by an editor,
    or failed when their job was presumed dead."""
    return (
        Generation.objects.of(record)
        .filter(status__in=OPEN)
        .update(status=status, error=error, finished_at=timezone.now())
    )


#: What a generation whose job was presumed dead (or taken over by a newer click) says.
ABANDONED_MESSAGE = gettext_noop("The image job did not finish in time.")

#: The generations whose job may still write to them.
OPEN = (Generation.Status.QUEUED, Generation.Status.RUNNING)
