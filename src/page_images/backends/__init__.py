"""Loading the configured backend, once per process and again when the setting changes."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from page_images.conf import app_settings
from page_images.loading import Configured, build

if TYPE_CHECKING:
    from page_images.backends.base import BaseBackend


def build_backend(path: str, options: dict[str, Any], where: str = "PAGE_IMAGES") -> BaseBackend:
    """The backend ``path`` names, built with ``options``; errors name the key to fix, in the
    setting ``where`` (``"PAGE_IMAGES['ALT_TEXT']"`` for the describer)."""
    from page_images.backends.base import BaseBackend  # the interface, not an implementation

    backend: BaseBackend = build(where, path, options, BaseBackend)
    return backend


_backend: Configured[BaseBackend] = Configured(
    lambda: build_backend(app_settings.BACKEND, app_settings.OPTIONS)
)


def get_backend() -> BaseBackend:
    """The backend named by the settings, built once per process."""
    return _backend.get()


def describer_config(config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The backend path and options that write alt text, from ``ALT_TEXT`` with its defaults.

    Without a BACKEND of its own the image backend describes, with the image OPTIONS inherited
    (the API key and base a site already set) under ALT_TEXT's own OPTIONS, so that
    ``{"MODEL": "openai/gpt-4o-mini"}`` is all a LiteLLM site writes. MODEL becomes the
    ``model`` option. A backend whose constructor takes ``timeout`` gets ALT_TEXT's TIMEOUT
    unless OPTIONS says otherwise: the image call's minutes are far too long for a caption.
    """
    path = str(config.get("BACKEND") or app_settings.BACKEND)
    inherited = app_settings.OPTIONS if path == app_settings.BACKEND else {}
    options: dict[str, Any] = {**inherited, **dict(config.get("OPTIONS") or {})}
    if config.get("MODEL"):
        options["model"] = str(config["MODEL"])
    if "timeout" not in dict(config.get("OPTIONS") or {}):
        from django.utils.module_loading import import_string

        try:
            takes_timeout = "timeout" in inspect.signature(import_string(path)).parameters
        except (ImportError, TypeError, ValueError):
            takes_timeout = False  # build_backend reports a path that does not import
        if takes_timeout:
            options["timeout"] = float(config["TIMEOUT"])
    return path, options


def _build_describer() -> BaseBackend | None:
    config = app_settings.ALT_TEXT
    if config is None:
        return None
    return build_backend(*describer_config(config), where="PAGE_IMAGES['ALT_TEXT']")


_describer: Configured[BaseBackend | None] = Configured(_build_describer)


def get_describer() -> BaseBackend | None:
    """The backend that writes alt text (``PAGE_IMAGES["ALT_TEXT"]``), or None when it is off."""
    return _describer.get()
