"""Building a pluggable class from a ``{"BACKEND": path, "OPTIONS": {...}}`` setting.

Backends and event buses are both chosen this way; one function means one set of error messages,
each naming the exact key to change, and a configuration error is always our
``PageImagesConfigurationError`` raised from the original, never a bare ImportError mid-request.
"""

from __future__ import annotations

from typing import Any

from django.utils.module_loading import import_string

from page_images.exceptions import PageImagesConfigurationError


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
            f"{where}['BACKEND'] = {path!r} could not be imported: {exc}"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise PageImagesConfigurationError(
            f"{where}['BACKEND'] = {path!r} is not a subclass of "
            f"{base.__module__}.{base.__qualname__}"
        )
    try:
        instance = cls(**options)
    except TypeError as exc:
        raise PageImagesConfigurationError(f"{where}['OPTIONS'] do not suit {path}: {exc}") from exc
    return instance
