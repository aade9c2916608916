"""The claim's state changes: claim, renew, release, fail and store.

These are the few operations that keep a record from ever being stuck.

Every state change is one conditional UPDATE rather than a read-modify-``save()``. That is what
makes exactly one of any number of concurrent clicks win the claim, what lets a job write its
picture only while it still holds the claim (a stale job can never overwrite a newer image), and
what keeps a job from reverting fields an editor changed while the picture was being made.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import FileField, Q
from django.utils import timezone
from django.utils.module_loading import import_string

from page_images import history, previews, signals
from page_images.conf import app_settings
from page_images.exceptions import StaleClaimError, StorageWriteError
from page_images.models import STALE_CLAIM_MESSAGE, ImageGeneratingMixin, image_generating_models

if TYPE_CHECKING:
    from django.core.files import File
    from django.core.files.storage import Storage

    from page_images.backends.base import GeneratedImage

logger = logging.getLogger(__name__)


RELEASED: dict[str, Any] = {
    "image_generating": False,
    "image_claim_token": None,
    "image_claimed_at": None,
    "image_started_at": None,
}


def rows(model: type[ImageGeneratingMixin], pk: Any, using: str | None = None) -> Any:
    # The base manager: a host's default manager may hide rows (soft delete, publishing).
    return model._base_manager.using(using).filter(pk=pk)


def notify(instance: ImageGeneratingMixin) -> None:
    """Tell the configured NOTIFIER that the record's image state changed; never raises.

    The database is the truth and every stream resyncs on reconnect, so a lost notification costs
    a moment's delay, never a stuck record: a failing notifier is logged, not allowed to fail a job.
    """
    try:
        import_string(app_settings.NOTIFIER)(instance)
    except Exception:
        logger.exception("PAGE_IMAGES['NOTIFIER'] failed for %s", instance.image_reference)


def lost() -> Q:
    """The claims presumed dead: the rows whose ``image_job_deadline`` has passed.

    A running attempt is dead ``CLAIM_TIMEOUT`` seconds after it started; a job still waiting in
    the queue, ``QUEUE_TIMEOUT`` seconds after the click (a backlog is not a dead job).
    """
    now = timezone.now()
    running_since = now - timedelta(seconds=app_settings.CLAIM_TIMEOUT)
    queued_since = now - timedelta(seconds=app_settings.QUEUE_TIMEOUT)
    return Q(image_generating=True) & (
        Q(image_started_at__lt=running_since)
        | Q(image_started_at__isnull=True, image_claimed_at__lt=queued_since)
        | Q(image_started_at__isnull=True, image_claimed_at__isnull=True)
    )


def claimable(model: type[ImageGeneratingMixin], *, replace: bool) -> Q:
    """The rows a new claim may take.

    A claim is free when nobody holds it, or when its job is presumed dead (:func:`lost`): that
    claim may be retaken. Without
    ``replace`` a record that already has a picture is not claimable either, in the same UPDATE:
    a click sent from a page rendered before someone else's picture landed must not pay for a
    second one and overwrite it.
    """
    free = Q(image_generating=False) | lost()
    if not replace:
        field = model.image_field_name
        free &= Q(**{field: ""}) | Q(**{f"{field}__isnull": True})
    return free


def _claimed(token: uuid.UUID) -> dict[str, Any]:
    return {
        "image_generating": True,
        "image_claim_token": token,
        "image_claimed_at": timezone.now(),
        "image_started_at": None,
        "image_error": "",
        "image_review": False,
    }


def hold(instance: ImageGeneratingMixin, values: dict[str, Any]) -> None:
    for key, value in values.items():
        setattr(instance, key, value)


def claim(instance: ImageGeneratingMixin, *, replace: bool = True) -> uuid.UUID | None:
    """Take the record's claim with one conditional UPDATE; return its token, or None if taken
    (see :func:`claimable` for what ``replace`` changes)."""
    token = uuid.uuid4()
    values = _claimed(token)
    won = (
        rows(type(instance), instance.pk, instance._state.db)
        .filter(claimable(type(instance), replace=replace))
        .update(**values)
    )
    if not won:
        return None
    hold(instance, values)
    return token


def claim_batch(
    model: type[ImageGeneratingMixin], using: str, batch: list[ImageGeneratingMixin], replace: bool
) -> list[tuple[ImageGeneratingMixin, uuid.UUID]]:
    """Claim every claimable record of ``batch`` with one UPDATE; the ones won, in order.

    The batch shares one token: a token only has to tell this claim of a record from that
    record's other claims, and one token lets a single SELECT find which rows the UPDATE took.
    """
    token = uuid.uuid4()
    values = _claimed(token)
    by_pk = {record.pk: record for record in batch}
    batch_rows = model._base_manager.using(using).filter(pk__in=list(by_pk))
    with transaction.atomic(using=using):
        if not batch_rows.filter(claimable(model, replace=replace)).update(**values):
            return []
        won = set(batch_rows.filter(image_claim_token=token).values_list("pk", flat=True))
    claims = []
    for pk, record in by_pk.items():
        if pk in won:
            hold(record, values)
            claims.append((record, token))
    return claims


def touch_claim(model: type[ImageGeneratingMixin], pk: Any, token: uuid.UUID) -> bool:
    """Mark a held claim's attempt as running now; False when the claim is no longer ours.

    Each attempt starts the ``CLAIM_TIMEOUT`` clock again, which lets a long retry sequence outlive
    it without being taken for dead, while a job whose claim was retaken learns it before it
    calls the provider.
    """
    return bool(
        rows(model, pk)
        .filter(image_generating=True, image_claim_token=token)
        .update(image_started_at=timezone.now())
    )


def requeue_claim(
    model: type[ImageGeneratingMixin],
    pk: Any,
    token: uuid.UUID,
    instance: ImageGeneratingMixin | None = None,
) -> bool:
    """Mark a held claim as waiting in the queue again (a retry with a countdown); ``instance``,
    if given, is brought up to date with it, for the announcement that follows.

    A retry may wait behind other jobs for as long as any queued job: its time is queue time, not
    running time, until the next attempt starts.
    """
    values = {"image_started_at": None, "image_claimed_at": timezone.now()}
    won = bool(
        rows(model, pk).filter(image_generating=True, image_claim_token=token).update(**values)
    )
    if won and instance is not None:
        hold(instance, values)
    return won


def cancel(instance: ImageGeneratingMixin) -> bool:
    """Release whatever job holds the record's claim, with no error; True when one did.

    The job itself is not stopped: a queued one finds its claim gone and skips, a running one
    finds it gone when it stores and discards its picture. The record is back to what it showed
    before the click, at once.
    """
    cancelled = bool(
        rows(type(instance), instance.pk, instance._state.db)
        .filter(image_generating=True)
        .update(**RELEASED, image_error="")
    )
    if cancelled:
        history.close_open(instance, history.Generation.Status.CANCELLED)
        hold(instance, {**RELEASED, "image_error": ""})
        notify(instance)
    return cancelled


def release_claim(
    model: type[ImageGeneratingMixin], pk: Any, token: uuid.UUID, *, error: str = ""
) -> bool:
    """Give the claim back, recording ``error`` for the editor; no-op unless ``token`` holds it."""
    return bool(
        rows(model, pk).filter(image_claim_token=token).update(**RELEASED, image_error=error)
    )


def set_image_and_notify(
    instance: ImageGeneratingMixin,
    image_file: File[Any],
    *,
    token: uuid.UUID | None = None,
    image: GeneratedImage | None = None,
) -> None:
    """Store the picture on the record, release the claim and announce it (the seed's
    ``set_page_image_and_notify``).

    With ``token``, the write happens only if that claim still holds and the picture field still
    holds what ``instance`` read (an editor may have uploaded a picture of their own meanwhile;
    theirs wins, and the claim is given back). Otherwise the stored file is deleted again and
    :class:`StaleClaimError` raised, so neither a stale picture nor an orphan file is left behind.
    The file is written before the row: a failed write removes what it wrote
    and raises :class:`StorageWriteError` with the row as it was, and a failed row update removes
    the file.
    """
    model = type(instance)
    field = instance._meta.get_field(instance.image_field_name)
    if not isinstance(field, FileField):  # the system check E010 reports this at start-up
        raise TypeError(f"{model._meta.label}.{instance.image_field_name} is not a FileField")
    storage = field.storage
    name = field.generate_filename(instance, image_file.name or "image")
    try:
        stored_name = storage.save(name, image_file, max_length=field.max_length)
    except Exception as exc:
        remove_partial(storage, name)
        raise StorageWriteError(detail=f"{type(exc).__name__}: {exc}") from exc
    written = rows(model, instance.pk, instance._state.db)
    if token is not None:
        read = getattr(instance, field.attname).name or ""
        unchanged = Q(**{field.attname: read})
        if not read:
            unchanged |= Q(**{f"{field.attname}__isnull": True})
        written = written.filter(unchanged, image_claim_token=token)
    try:
        updated = written.update(**{field.attname: stored_name}, **RELEASED, image_error="")
    except BaseException:
        storage.delete(stored_name)
        raise
    if not updated:
        storage.delete(stored_name)
        if token is not None and release_claim(model, instance.pk, token):
            notify(model._base_manager.get(pk=instance.pk))  # an editor's own picture landed
        raise StaleClaimError(
            f"{instance.image_reference}: the claim {token} is no longer held, or the picture "
            "changed meanwhile; this job's picture discarded"
        )
    setattr(instance, field.attname, stored_name)
    for key, value in RELEASED.items():
        setattr(instance, key, value)
    instance.image_error = ""
    signals.send(signals.generation_succeeded, model, instance=instance, image=image, token=token)
    notify(instance)


def remove_partial(storage: Storage, name: str) -> None:
    # Django's FileSystemStorage leaves the bytes written so far when a write fails (disk full).
    # The task's file names carry the claim token, so a file at ``name`` can only be this job's.
    try:
        if storage.exists(name):
            storage.delete(name)
    except Exception:
        logger.exception("Could not remove the partly written picture %s", name)


def fail_generation(
    model: type[ImageGeneratingMixin],
    pk: Any,
    token: uuid.UUID,
    message: str,
    error: BaseException | None = None,
    *,
    instance: ImageGeneratingMixin | None = None,
) -> bool:
    """Release the claim with ``message`` for the editor and send ``generation_failed``.

    Returns False (and sends nothing) when the claim was no longer ours: a newer job owns the
    record, and its outcome is the one to show.
    """
    if not release_claim(model, pk, token, error=message):
        return False
    history.record_outcome(model, pk, token, history.Generation.Status.FAILED, error=message)
    signals.send(
        signals.generation_failed,
        model,
        pk=pk,
        instance=instance,
        error=error,
        message=message,
        token=token,
    )
    if instance is None:
        instance = model._base_manager.filter(pk=pk).first()
    if instance is not None:
        instance.image_generating = False
        instance.image_error = message
        notify(instance)
    return True


def announce_if_deleted(model: type[ImageGeneratingMixin], pk: Any) -> bool:
    """Tell the pages showing a record that it is gone, if it is; True when it was.

    A job that finds its record deleted has no picture to store and no claim to release, but
    other tabs may still show the record's spinner: without news they would spin until reloaded.
    The notifier gets an unsaved instance that carries only the primary key.
    """
    if rows(model, pk).exists():
        return False
    gone = model()
    gone.pk = pk
    notify(gone)
    return True


def release_stale_claims() -> int:
    """Release every claim presumed dead in every model; return how many.

    Not needed for editors: a page shows a dead job as "Try again" by itself, and a click retakes
    its claim. It writes the verdict into the rows, for reports, admin filters and sites that
    read ``image_generating`` directly.
    """
    stale = lost()
    released = 0
    for model in image_generating_models():
        pks = list(model._base_manager.filter(stale).values_list("pk", flat=True))
        if not pks:
            continue
        released += model._base_manager.filter(stale, pk__in=pks).update(
            **RELEASED, image_error=STALE_CLAIM_MESSAGE
        )
        for instance in model._base_manager.filter(pk__in=pks, image_generating=False):
            history.close_open(
                instance, history.Generation.Status.FAILED, error=history.ABANDONED_MESSAGE
            )
            previews.sweep(instance)  # a dead job's preview is nobody's to delete but ours
            notify(instance)
    return released
