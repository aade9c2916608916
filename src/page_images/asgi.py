"""The documented path of the ASGI wrapper, :mod:`page_images.live.asgi`."""

from __future__ import annotations

from page_images.live.asgi import EventStreams

__all__ = ["EventStreams"]
