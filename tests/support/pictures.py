"""Records with pictures, candidates and history, put there the way the jobs put them."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.files.base import ContentFile

from page_images import claims, pictures
from page_images.history import Generation, Picture, content_type_of
from page_images.testing import png_bytes


def files(count: int, prefix: str = "c") -> list[ContentFile[bytes]]:
    return [ContentFile(png_bytes(8, 8), name=f"{prefix}{index}.png") for index in range(count)]


def with_new_picture(instance: Any) -> Any:
    """``instance`` showing a new file, stored as a job stores it (under a name never used)."""
    token = claims.claim(instance)
    picture = ContentFile(png_bytes(8, 8), name=f"{uuid.uuid4().hex}.png")
    claims.set_image_and_notify(instance, picture, token=token)
    return instance


def claimed_generation(instance: Any, **fields: Any) -> tuple[uuid.UUID, Generation]:
    """A click's claim and its history row (running, asking for a review)."""
    token = claims.claim(instance)
    assert token is not None
    row = Generation.objects.create(
        content_type=content_type_of(instance),
        object_id=str(instance.pk),
        token=token,
        prompt=instance.get_image_prompt(),
        review=True,
        status=Generation.Status.RUNNING,
        **fields,
    )
    return token, row


def in_review(instance: Any, count: int = 2) -> list[Picture]:
    """``instance`` with ``count`` candidates waiting, stored the way a review job stores them."""
    token, row = claimed_generation(instance)
    return pictures.store_candidates(instance, files(count), token=token, generation=row)


def kept(instance: Any, name: str) -> Picture:
    """An earlier picture of ``instance`` that "Restore" offers."""
    return Picture.objects.create(
        content_type=content_type_of(instance),
        object_id=str(instance.pk),
        name=name,
        status=Picture.Status.KEPT,
    )
