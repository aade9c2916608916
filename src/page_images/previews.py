"""Rough versions of a picture while it is drawn, for the editor who waits for it.

A model may send partial pictures while it renders (OpenAI's gpt-image models, the LocalBackend);
``PREVIEWS`` asks for up to three. Each is a courtesy, never a result: it is validated like any
bytes from a provider (:mod:`page_images.intake`), stored as one file at a time (the latest), named
in the job's history row (:attr:`page_images.history.Generation.preview`) and announced like any
other change, so the pages that follow the record re-fetch its container, which shows it blurred
and marked as a preview. Only a generating container shows it, and only editors see a generating
container (:func:`page_images.rendering.visitor_state`): a visitor never gets its address.

Nothing a preview does can fail the job: a preview that cannot be checked, stored or announced is
logged and skipped, and the final picture follows as if none had been asked for. The file is
deleted when the next preview replaces it, when the attempt ends whatever its outcome
(:meth:`PreviewKeeper.close`), and, for a worker killed meanwhile, by the record's next job or by
:func:`page_images.claims.release_stale_claims` (:func:`sweep`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.core.files.base import ContentFile

from page_images import history
from page_images.intake import validate_image
from page_images.models import image_field

if TYPE_CHECKING:
    import uuid
    from collections.abc import Callable

    from django.core.files.storage import Storage

    from page_images.backends.base import PreviewImage
    from page_images.models import ImageGeneratingMixin

logger = logging.getLogger(__name__)


def discard(storage: Storage, name: str) -> None:
    """Delete a preview's file; a storage that fails is logged (the file is only a preview)."""
    try:
        storage.delete(name)
    except Exception:
        logger.warning("page_images: could not delete the preview %s", name, exc_info=True)


class PreviewKeeper:
    """The ``on_preview`` of one attempt of a job: keeps the latest preview, announces each.

    ``announce`` is told the record after each stored preview (the job's NOTIFIER);
    ``time_limit`` is the exception the task framework raises at its soft limit, the one error a
    preview must let through, since it ends the job, not the preview.
    """

    def __init__(
        self,
        instance: ImageGeneratingMixin,
        token: uuid.UUID,
        *,
        announce: Callable[[ImageGeneratingMixin], None],
        time_limit: type[BaseException],
    ) -> None:
        self.instance = instance
        self.token = token
        self.announce = announce
        self.time_limit = time_limit
        #: The stored preview's name; "" while there is none.
        self.current = ""
        #: How many previews were stored and announced.
        self.shown = 0
        self._stopped = False

    def __call__(self, preview: PreviewImage) -> None:
        if self._stopped:
            return
        try:
            self._keep(preview)
        except self.time_limit:
            raise
        except Exception:
            logger.warning(
                "page_images: preview %d of %s skipped",
                preview.index,
                self.instance.image_reference,
                exc_info=True,
            )

    def _rows(self) -> Any:
        model = type(self.instance)
        return history.generations_of_job(model, self.instance.pk, self.token)

    def _keep(self, preview: PreviewImage) -> None:
        image = validate_image(preview.content, declared_type=preview.content_type)
        instance = self.instance
        field = image_field(instance)
        storage = field.storage
        wanted = f"{instance.pk}-{self.token.hex[:12]}-preview-{preview.index}.{image.extension}"
        name = field.generate_filename(instance, wanted)
        stored = storage.save(name, ContentFile(image.content), max_length=field.max_length)
        # Only while the attempt runs: a job cancelled meanwhile shows nothing more.
        if not self._rows().filter(status=history.Generation.Status.RUNNING).update(preview=stored):
            discard(storage, stored)
            self._stopped = True
            return
        previous, self.current = self.current, stored
        if previous:
            discard(storage, previous)
        self.shown += 1
        self.announce(instance)

    def close(self) -> None:
        """The attempt ended (a picture, an error, a retry): forget its preview."""
        if not self.current:
            return
        try:
            self._rows().filter(preview=self.current).update(preview="")
        except Exception:
            logger.warning("page_images: could not forget the preview %s", self.current)
        discard(image_field(self.instance).storage, self.current)
        self.current = ""


def sweep(record: ImageGeneratingMixin) -> int:
    """Delete the previews the record's ended generations still name (their worker was killed);
    how many. A running generation's preview is its job's to delete."""
    left = (
        history.Generation.objects.of(record)
        .exclude(preview="")
        .exclude(status__in=history.OPEN)
        .values_list("pk", "preview")
    )
    found = list(left)
    if not found:
        return 0
    storage = image_field(record).storage
    for _, name in found:
        discard(storage, name)
    history.Generation.objects.filter(pk__in=[pk for pk, _ in found]).update(preview="")
    return len(found)
