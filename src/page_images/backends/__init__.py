"""Loading the configured backend, once per process and again when the setting changes."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from django.core.signals import setting_changed
from django.dispatch import receiver

from page_images.conf import SETTING_NAME, app_settings
from page_images.loading import build

if TYPE_CHECKING:
    from page_images.backends.base import BaseBackend


def build_backend(path: str, options: dict[str, Any]) -> BaseBackend:
    """The backend ``path`` names, built with ``options``; errors name the key to fix."""
    from page_images.backends.base import BaseBackend

    backend: BaseBackend = build("PAGE_IMAGES", path, options, BaseBackend)
    return backend


@lru_cache(maxsize=1)
def get_backend() -> BaseBackend:
    """The backend named by the settings, built once per process."""
    return build_backend(app_settings.BACKEND, app_settings.OPTIONS)


@receiver(setting_changed)
def _reset_backend(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTING_NAME:
        get_backend.cache_clear()
