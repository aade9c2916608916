"""One-click AI illustrations for any Django model."""

from __future__ import annotations

from importlib.metadata import version

#: The installed distribution's version: written once, in pyproject.toml.
__version__ = version("django-page-images")
