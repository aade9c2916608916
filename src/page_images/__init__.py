"""One-click AI illustrations for any Django model."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # ``page_images.__version__`` is read from the installed distribution's metadata (written
    # once, in pyproject.toml), on first use only: importing importlib.metadata and scanning the
    # installed distributions costs every web process's django.setup() 10-50 ms otherwise.
    if name == "__version__":
        from importlib.metadata import version

        return version("django-page-images")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
