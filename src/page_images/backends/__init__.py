"""Loading the configured backend, once per process and again when the setting changes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from page_images.conf import app_settings
from page_images.loading import Configured, build

if TYPE_CHECKING:
    from page_images.backends.base import BaseBackend


def build_backend(path: str, options: dict[str, Any]) -> BaseBackend:
    """The backend ``path`` names, built with ``options``; errors name the key to fix."""
    from page_images.backends.base import BaseBackend  # the interface, not an implementation

    backend: BaseBackend = build("PAGE_IMAGES", path, options, BaseBackend)
    return backend


_backend: Configured[BaseBackend] = Configured(
    lambda: build_backend(app_settings.BACKEND, app_settings.OPTIONS)
)


def get_backend() -> BaseBackend:
    """The backend named by the settings, built once per process."""
    return _backend.get()
