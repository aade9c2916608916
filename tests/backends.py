"""A backend whose answers a test scripts in advance: a real BaseBackend run by the real task."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, ClassVar

from django.db import connections

from page_images.backends.base import BaseBackend, GeneratedImage, ImageRequest, PreviewImage
from page_images.testing import png_bytes

if TYPE_CHECKING:
    from collections.abc import Callable


class ScriptedBackend(BaseBackend):
    #: What the next calls answer, in order: an exception to raise, bytes or a GeneratedImage to
    #: return, or a callable given the request (to act while the provider works) that answers.
    script: ClassVar[list[Any]] = []
    calls: ClassVar[list[ImageRequest]] = []
    #: Whether the database connection was closed when each call began.
    db_closed: ClassVar[list[bool]] = []
    lock = threading.Lock()

    @classmethod
    def reset(cls, *script: Any) -> None:
        cls.script = list(script)
        cls.calls = []
        cls.db_closed = []

    def generate(self, request: ImageRequest) -> GeneratedImage:
        with self.lock:
            self.calls.append(request)
            self.db_closed.append(connections["default"].connection is None)
            outcome = self.script.pop(0) if self.script else png_bytes(32, 32)
        if callable(outcome):
            outcome = outcome(request)
        if isinstance(outcome, BaseException):
            raise outcome
        if isinstance(outcome, GeneratedImage):
            return outcome
        return GeneratedImage(content=outcome, content_type="image/png", model="scripted")


class PreviewingBackend(ScriptedBackend):
    """Sends its scripted previews, then answers as :class:`ScriptedBackend`.

    Each entry of :attr:`previews` is bytes, sent as the next preview (at most ``partials`` of
    them), or a callable run at that point of the drawing, to look at what the pages see then.
    """

    previews: ClassVar[list[Any]] = []
    #: The ``partials`` of each generate_with_previews call.
    partials_asked: ClassVar[list[int]] = []

    @classmethod
    def reset(cls, *script: Any, previews: tuple[Any, ...] = ()) -> None:
        super().reset(*script)
        cls.previews = list(previews)
        cls.partials_asked = []

    def generate_with_previews(
        self, request: ImageRequest, on_preview: Callable[[PreviewImage], None], *, partials: int
    ) -> GeneratedImage:
        self.partials_asked.append(partials)
        sent = 0
        for entry in self.previews:
            if callable(entry):
                entry()
            elif sent < partials:
                on_preview(PreviewImage(content=entry, index=sent, content_type="image/png"))
                sent += 1
        return self.generate(request)


class StrictBackend(BaseBackend):
    """Takes exactly one option: for the check that OPTIONS suit the backend's constructor."""

    def __init__(self, *, colour: str) -> None:
        super().__init__(colour=colour)

    def generate(self, request: ImageRequest) -> GeneratedImage:
        raise NotImplementedError
