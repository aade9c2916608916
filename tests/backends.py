"""A backend whose answers a test scripts in advance: a real BaseBackend run by the real task."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from django.db import connections

from page_images.backends.base import BaseBackend, GeneratedImage, ImageRequest
from page_images.testing import png_bytes


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


class StrictBackend(BaseBackend):
    """Takes exactly one option: for the check that OPTIONS suit the backend's constructor."""

    def __init__(self, *, colour: str) -> None:
        super().__init__(colour=colour)

    def generate(self, request: ImageRequest) -> GeneratedImage:
        raise NotImplementedError
