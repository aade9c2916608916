"""The files behind a record's picture: candidates to choose from, earlier pictures to restore.

When a file is deleted, and how a site keeps it:

- A candidate (a picture made for review) is deleted when the editor accepts another candidate of
  its generation, discards the candidates, or asks for new pictures while they wait.
- A picture the record showed is kept after it is replaced, so "Restore" can bring it back:
  the ``KEEP_PICTURES`` newest per record (default 5). An older one is deleted when a newer one
  is kept. ``KEEP_PICTURES = None`` keeps every file for ever.
- A file a record shows is never deleted (nor one another record of the model shows, as a copy
  of a page does), nor one this app did not track (a picture uploaded by hand is tracked, and so
  kept and restorable, from the moment a generation replaces it).
- Deleting a record deletes none of its files, as Django does not for any ``FileField``.

Every change of what the record shows is one conditional UPDATE, as in :mod:`page_images.claims`:
an accept or a restore sent from a page drawn before someone else's change does nothing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Q

from page_images import alttext, claims
from page_images.conf import app_settings
from page_images.exceptions import StaleClaimError, StorageWriteError
from page_images.history import Generation, Picture, content_type_of, record_outcome
from page_images.models import image_field

if TYPE_CHECKING:
    import uuid
    from collections.abc import Iterable, Sequence

    from django.core.files import File
    from django.core.files.storage import Storage

    from page_images.models import ImageGeneratingMixin

logger = logging.getLogger(__name__)


def storage_of(instance: ImageGeneratingMixin) -> Storage:
    return image_field(instance).storage


def current_name(instance: ImageGeneratingMixin) -> str:
    return getattr(instance, image_field(instance).attname).name or ""


def _showing(instance: ImageGeneratingMixin, name: str) -> Q:
    attname = image_field(instance).attname
    shown = Q(**{attname: name})
    if not name:
        shown |= Q(**{f"{attname}__isnull": True})
    return shown


def delete_files(storage: Storage, names: Iterable[str]) -> None:
    """Delete files no longer wanted; a failure is logged, never raised (the rows are gone)."""
    for name in names:
        try:
            storage.delete(name)
        except Exception:
            logger.exception("page_images could not delete the unwanted file %s", name)


def _delete_after_commit(instance: ImageGeneratingMixin, names: list[str]) -> None:
    if names:
        storage = storage_of(instance)
        transaction.on_commit(
            lambda: delete_files(storage, names), using=instance._state.db or "default"
        )


def _track(instance: ImageGeneratingMixin, name: str) -> None:
    """Keep ``name`` (the picture being replaced) restorable, if it is a file at all."""
    if name and not Picture.objects.of(instance).filter(name=name).exists():
        Picture.objects.create(
            content_type=content_type_of(instance),
            object_id=str(instance.pk),
            name=name,
            status=Picture.Status.KEPT,
        )


def kept_live(
    instance: ImageGeneratingMixin, name: str, replaced: str, generation: Generation | None
) -> Picture:
    """Record a picture the job just made live, and the one it replaced; prune the oldest.

    A record's first picture replaced nothing, so nothing can have fallen out of the kept ones:
    a backfill's job pays one INSERT here.
    """
    _track(instance, replaced)
    picture = Picture.objects.create(
        content_type=content_type_of(instance),
        object_id=str(instance.pk),
        generation=generation,
        name=name,
        status=Picture.Status.KEPT,
    )
    if replaced:
        prune(instance)
    return picture


def prune(instance: ImageGeneratingMixin) -> list[str]:
    """Forget the kept pictures beyond ``KEEP_PICTURES`` (never the one shown) and delete their
    files once committed, but those another record of the model shows; the names deleted."""
    keep = app_settings.KEEP_PICTURES
    if keep is None:
        return []
    shown = current_name(instance)
    older = list(
        Picture.objects.of(instance)
        .filter(status=Picture.Status.KEPT)
        .exclude(name=shown)
        .order_by("-created_at", "-pk")[keep:]
    )
    if not older:
        return []
    Picture.objects.filter(pk__in=[picture.pk for picture in older]).delete()
    names = [picture.name for picture in older]
    # A record copied with its picture ("Save as new", a CMS's "copy page") shows the same file:
    # it is no longer this record's to restore, but it is still that record's picture.
    attname = image_field(instance).attname
    shown_elsewhere = set(
        type(instance)
        ._base_manager.using(instance._state.db)
        .filter(**{f"{attname}__in": names})
        .values_list(attname, flat=True)
    )
    names = [name for name in names if name not in shown_elsewhere]
    # After the commit, as every deletion here: a caller's transaction (ATOMIC_REQUESTS) that
    # rolls back brings the rows back, and their files must still be there.
    _delete_after_commit(instance, names)
    return names


def store_candidates(
    instance: ImageGeneratingMixin,
    files: Sequence[File[Any]],
    *,
    token: uuid.UUID,
    generation: Generation | None,
    outcome: dict[str, Any] | None = None,
) -> list[Picture]:
    """Save the pictures as candidates and put the record in review, if ``token`` still holds.

    The live picture is not touched: visitors see what they saw until an editor accepts one.
    ``outcome`` (the history row's fields) is written as "waiting for review" in the same
    transaction: an editor who accepts at once must find the row waiting, or it would stay so.
    Like :func:`page_images.claims.set_image_and_notify`, files are written before the row; a
    claim lost meanwhile deletes them again and raises :class:`StaleClaimError`.
    """
    field = image_field(instance)
    storage = field.storage
    names: list[str] = []
    try:
        for file in files:
            name = field.generate_filename(instance, file.name or "image")
            try:
                names.append(storage.save(name, file, max_length=field.max_length))
            except Exception as exc:
                claims.remove_partial(storage, name)
                raise StorageWriteError(detail=f"{type(exc).__name__}: {exc}") from exc
        with transaction.atomic(using=instance._state.db):
            updated = (
                claims.rows(type(instance), instance.pk, instance._state.db)
                .filter(image_claim_token=token)
                .update(**claims.RELEASED, image_error="", image_review=True)
            )
            if not updated:
                raise StaleClaimError(
                    f"{instance.image_reference}: the claim {token} is no longer held; "
                    "its candidates discarded"
                )
            # Candidates of an older review this click replaced (drop_review missed them when
            # the page that clicked was out of date): never two reviews' pictures in one choice.
            dropped = _drop_candidates(instance)
            content_type = content_type_of(instance)
            pictures = Picture.objects.bulk_create(
                Picture(
                    content_type=content_type,
                    object_id=str(instance.pk),
                    generation=generation,
                    name=name,
                    status=Picture.Status.CANDIDATE,
                )
                for name in names
            )
            record_outcome(
                type(instance), instance.pk, token, Generation.Status.REVIEW, **(outcome or {})
            )
    except BaseException:
        delete_files(storage, names)
        raise
    _delete_after_commit(instance, dropped)
    claims.hold(instance, {**claims.RELEASED, "image_error": "", "image_review": True})
    return pictures


def candidates(instance: ImageGeneratingMixin) -> list[Picture]:
    return list(
        Picture.objects.of(instance)
        .filter(status=Picture.Status.CANDIDATE)
        .order_by("created_at", "pk")
    )


def earlier(instance: ImageGeneratingMixin) -> list[Picture]:
    """The kept pictures the record does not show now: what "Restore" offers, newest first."""
    return list(
        Picture.objects.of(instance)
        .filter(status=Picture.Status.KEPT)
        .exclude(name=current_name(instance))
        .order_by("-created_at", "-pk")
    )


def _drop_candidates(instance: ImageGeneratingMixin, *, keep: int | None = None) -> list[str]:
    rows = Picture.objects.of(instance).filter(status=Picture.Status.CANDIDATE)
    if keep is not None:
        rows = rows.exclude(pk=keep)
    names = list(rows.values_list("name", flat=True))
    rows.delete()
    return names


def accept(instance: ImageGeneratingMixin, picture_id: Any) -> bool:
    """Publish one candidate as the record's picture; False when the page was out of date.

    The other candidates of the review are deleted, the picture it replaces is kept.
    """
    with transaction.atomic(using=instance._state.db):
        picture = (
            Picture.objects.of(instance)
            .filter(pk=picture_id, status=Picture.Status.CANDIDATE)
            .first()
        )
        if picture is None:
            return False
        shown = current_name(instance)
        previous_alt = alttext.generated_for(instance, shown)
        updated = (
            claims.rows(type(instance), instance.pk, instance._state.db)
            .filter(_showing(instance, shown), image_review=True, image_generating=False)
            .update(**{image_field(instance).attname: picture.name}, image_review=False)
        )
        if not updated:
            return False
        # The candidate's alt text (what the editor saw beside it) goes live with it, unless the
        # field holds an editor's own words (alttext.publish says when it is ours to write).
        alttext.publish(instance, picture.name, picture.alt_text, previous=previous_alt)
        _track(instance, shown)
        picture.status = Picture.Status.KEPT
        picture.save(update_fields=["status"])
        dropped = _drop_candidates(instance, keep=picture.pk)
        Generation.objects.of(instance).filter(status=Generation.Status.REVIEW).update(
            status=Generation.Status.DONE
        )
    _delete_after_commit(instance, dropped)
    setattr(instance, image_field(instance).attname, picture.name)
    instance.image_review = False
    prune(instance)
    claims.notify(instance)
    return True


def discard(instance: ImageGeneratingMixin, picture_id: Any = None) -> bool:
    """Throw the waiting candidates away; the live picture stays. False when none waited.

    ``picture_id``, one of the candidates the editor's page showed, ties the discard to that
    review: False (nothing thrown away) when it is no longer a candidate, because a newer click
    replaced the review the page showed with one its editor has not seen.
    """
    with transaction.atomic(using=instance._state.db):
        if picture_id is not None and not (
            Picture.objects.of(instance)
            .filter(pk=picture_id, status=Picture.Status.CANDIDATE)
            .exists()
        ):
            return False
        updated = (
            claims.rows(type(instance), instance.pk, instance._state.db)
            .filter(image_review=True)
            .update(image_review=False)
        )
        dropped = _drop_candidates(instance)
        Generation.objects.of(instance).filter(status=Generation.Status.REVIEW).update(
            status=Generation.Status.CANCELLED
        )
    _delete_after_commit(instance, dropped)
    instance.image_review = False
    if updated:
        claims.notify(instance)
    return bool(updated)


def drop_review(instance: ImageGeneratingMixin) -> None:
    """A newer click replaces a review: its candidates go (called once the claim is taken)."""
    dropped = _drop_candidates(instance)
    Generation.objects.of(instance).filter(status=Generation.Status.REVIEW).update(
        status=Generation.Status.CANCELLED
    )
    _delete_after_commit(instance, dropped)


def restore(instance: ImageGeneratingMixin, picture_id: Any) -> bool:
    """Show an earlier picture again; the one it replaces is kept. False when out of date."""
    picture = Picture.objects.of(instance).filter(pk=picture_id, status=Picture.Status.KEPT).first()
    shown = current_name(instance)
    if picture is None or picture.name == shown:
        return False
    previous_alt = alttext.generated_for(instance, shown)
    updated = (
        claims.rows(type(instance), instance.pk, instance._state.db)
        .filter(_showing(instance, shown), image_generating=False)
        .update(**{image_field(instance).attname: picture.name}, image_error="")
    )
    if not updated:
        return False
    alttext.publish(instance, picture.name, picture.alt_text, previous=previous_alt)
    _track(instance, shown)
    setattr(instance, image_field(instance).attname, picture.name)
    instance.image_error = ""
    claims.notify(instance)
    return True


__all__ = [
    "accept",
    "candidates",
    "discard",
    "drop_review",
    "earlier",
    "kept_live",
    "prune",
    "record_outcome",
    "restore",
    "store_candidates",
]
