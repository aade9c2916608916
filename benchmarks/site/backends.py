"""A provider that answers at once: what is left of a job is our own part of it."""

from __future__ import annotations

from typing import Any

from page_images.backends.base import BaseBackend, GeneratedImage, ImageRequest


class InstantBackend(BaseBackend):
    """Returns the bytes of ``path`` (read once) for every request, without waiting."""

    def __init__(self, *, path: str = "", **options: Any) -> None:
        super().__init__(path=path, **options)
        self.path = path
        self._content: bytes | None = None

    def load(self) -> bytes:
        if self._content is None:
            with open(self.path, "rb") as file:
                self._content = file.read()
        return self._content

    def prepare(self) -> None:
        self.load()

    def generate(self, request: ImageRequest) -> GeneratedImage:
        return GeneratedImage(content=self.load(), content_type="image/png", model="instant")
