"""Deliberately broken variants of the code that keeps the promises, to prove the tests bite.

``PAGE_IMAGES_TEST_BREAK=<name> pytest …`` runs tests against one of them (tests/conftest.py
applies it for the whole session); ``test_broken_variants.py`` does so and requires the guarding
tests to fail. Each variant is the mistake a plausible refactor would make.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import TYPE_CHECKING, Any
from unittest import mock

from django.utils import timezone

from page_images import claims, clicks

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from page_images.models import ImageGeneratingMixin


def _racy_claim(instance: ImageGeneratingMixin, *, replace: bool = True) -> uuid.UUID | None:
    # Read, decide in Python, then write: the check and the write are no longer one statement,
    # so concurrent clicks all read "free" and all win.
    model = type(instance)
    current = model._base_manager.get(pk=instance.pk)
    if current.image_generating and not current.image_job_lost:
        return None
    token = uuid.uuid4()
    model._base_manager.filter(pk=instance.pk).update(
        image_generating=True, image_claim_token=token, image_claimed_at=timezone.now()
    )
    instance.image_generating, instance.image_claim_token = True, token
    return token


@contextlib.contextmanager
def racy_claim() -> Iterator[None]:
    with mock.patch.object(claims, "claim", _racy_claim):
        yield


_store = claims.set_image_and_notify


def _store_whatever_the_claim(instance: Any, image_file: Any, **kwargs: Any) -> None:
    # Forgets to make the write conditional on the job's claim token.
    _store(instance, image_file, image=kwargs.get("image"))


@contextlib.contextmanager
def stale_overwrite() -> Iterator[None]:
    with mock.patch.object(claims, "set_image_and_notify", _store_whatever_the_claim):
        yield


@contextlib.contextmanager
def no_permission_check() -> Iterator[None]:
    # The trigger view (and the router) forget to ask whether this user may change this record.
    with mock.patch.object(clicks, "can_generate", return_value=True):
        yield


VARIANTS: dict[str, Callable[[], contextlib.AbstractContextManager[None]]] = {
    "racy-claim": racy_claim,
    "stale-overwrite": stale_overwrite,
    "no-permission-check": no_permission_check,
}
