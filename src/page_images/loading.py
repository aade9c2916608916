"""Building a pluggable class from a ``{"BACKEND": path, "OPTIONS": {...}}`` setting; keeping it.

Backends and event buses are both chosen this way; one function means one set of error messages,
each naming the exact key to change, and a configuration error is always our
``PageImagesConfigurationError`` raised from the original, never a bare ImportError mid-request.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from django.core.signals import setting_changed
from django.utils.module_loading import import_string
from django.utils.translation import gettext_noop

from page_images.conf import SETTING_NAME
from page_images.exceptions import PageImagesConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")


def build(where: str, path: str, options: dict[str, Any], base: type[Any]) -> Any:
    """Import ``path``, check it subclasses ``base``, and construct it with ``options``.

    ``where`` names the setting holding BACKEND and OPTIONS, as in ``"PAGE_IMAGES"`` or
    ``"PAGE_IMAGES['EVENTS']"``. (``base`` is typed loosely because it is usually abstract;
    callers annotate what they get back.)
    """
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise PageImagesConfigurationError(
            gettext_noop("%(setting)s['BACKEND'] = %(path)s could not be imported: %(problem)s"),
            {"setting": where, "path": repr(path), "problem": str(exc)},
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise PageImagesConfigurationError(
            gettext_noop("%(setting)s['BACKEND'] = %(path)s is not a subclass of %(base)s"),
            {
                "setting": where,
                "path": repr(path),
                "base": f"{base.__module__}.{base.__qualname__}",
            },
        )
    try:
        instance = cls(**options)
    except TypeError as exc:
        raise PageImagesConfigurationError(
            gettext_noop("%(setting)s['OPTIONS'] do not suit %(path)s: %(problem)s"),
            {"setting": where, "path": path, "problem": str(exc)},
        ) from exc
    return instance


class Configured(Generic[T]):
    """What ``build()`` makes from ``PAGE_IMAGES``: built once per process, again once it changes.

    Backends and buses are built on first use, not at import (an import must cost no I/O, and the
    settings may not be ready), and kept, because building one per job or per event would repeat
    their set-up. Tests change ``PAGE_IMAGES`` with ``override_settings``; Django's
    ``setting_changed`` signal drops the built value then. The lock keeps two threads from building
    two at once: with the in-process bus, that would split publishers and listeners between two
    buses that never meet.
    """

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._value: T | None = None
        self._built = False
        setting_changed.connect(self._on_setting_changed, weak=False)

    def get(self) -> T:
        """The built value; a failed build raises, and is tried again next time."""
        with self._lock:
            if not self._built:
                self._value = self._build()
                self._built = True
            return cast("T", self._value)

    def reset(self) -> None:
        with self._lock:
            value, self._value, self._built = self._value, None, False
        close = getattr(value, "close", None)
        if callable(close):  # a bus's pooled connection, closed now rather than by the collector
            close()

    def _on_setting_changed(self, *, setting: str, **kwargs: Any) -> None:
        if setting == SETTING_NAME:
            self.reset()
