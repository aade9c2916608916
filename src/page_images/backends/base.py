"""The backend interface: a prompt goes in, picture bytes come out.

A backend knows one provider and nothing of Django models, Celery or storage, so a site can write
its own in a few lines and test it alone. It reports failures with the error hierarchy re-exported
here: the class says whether the task should retry, the message says what the editor sees. The bytes
it returns are untrusted: :mod:`page_images.intake` validates them before anything is stored.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from page_images.conf import parse_ratio
from page_images.exceptions import (
    ContentPolicyError,
    GenerationError,
    GenerationTimeoutError,
    InvalidImageError,
    PermanentGenerationError,
    ProviderAuthenticationError,
    TransientGenerationError,
    UnsupportedAspectRatioError,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from decimal import Decimal

    from django.core.checks import CheckMessage

__all__ = [
    "BaseBackend",
    "ContentPolicyError",
    "GeneratedImage",
    "GenerationError",
    "GenerationTimeoutError",
    "ImageRequest",
    "InvalidImageError",
    "PermanentGenerationError",
    "PreviewImage",
    "ProviderAuthenticationError",
    "TransientGenerationError",
    "UnsupportedAspectRatioError",
]


def _round64(side: float) -> int:
    return max(64, min(8192, round(side / 64) * 64))


@dataclass(frozen=True)
class ImageRequest:
    """What to draw. Built by the task from the record and the settings."""

    prompt: str
    width: int = 1024
    height: int = 1024
    #: "low", "medium", "high", "auto", or None for the provider's default.
    quality: str | None = None
    #: An opaque id of the record ("stories.page:42"), for provider-side abuse tracking and logs.
    reference: str = ""
    #: How many pictures to make for this prompt (candidates for an editor to choose from).
    n: int = 1
    #: Which of the pictures of one generation this is, for backends that draw them one by one.
    variant: int = 0

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass(frozen=True)
class GeneratedImage:
    """What a backend made: the raw bytes and what is known about them."""

    content: bytes = field(repr=False)
    #: The MIME type the provider declared, if any; checked against the bytes, never trusted.
    content_type: str | None = None
    #: The model that made the picture, as the provider names it.
    model: str = ""
    #: What the call cost in USD, when the backend knows it.
    cost: Decimal | None = None
    #: The prompt as the provider rewrote it, when it says.
    revised_prompt: str | None = None
    #: Anything else worth logging (provider ids, timings); never shown to editors.
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PreviewImage:
    """A rough, early version of the picture still being drawn: something to look at meanwhile.

    Never a result: it is not validated, stored as a candidate or billed, and a backend that
    sends a broken one still owes the final picture.
    """

    content: bytes = field(repr=False)
    #: Which partial this is, from 0, in the order the provider sent them.
    index: int
    content_type: str | None = None


class BaseBackend(ABC):
    """Subclass this, implement :meth:`generate` (and :meth:`describe` for alt text), and name
    the class in ``PAGE_IMAGES["BACKEND"]``.

    The constructor takes ``PAGE_IMAGES["OPTIONS"]`` as keyword arguments. It must not do I/O or
    import heavy libraries: the web process builds backends for its system checks.
    """

    def __init__(self, **options: Any) -> None:
        self.options = options

    @abstractmethod
    def generate(self, request: ImageRequest) -> GeneratedImage:
        """Make one picture, or raise a :class:`GenerationError` subclass that says why not."""

    def generate_variants(self, request: ImageRequest) -> list[GeneratedImage]:
        """Make ``request.n`` pictures of one prompt.

        By default one :meth:`generate` call per picture, each told which variant it is; a
        backend whose provider makes several in one call (OpenAI's ``n``) overrides this. A
        failure fails them all: an editor chooses among a full set, or retries.
        """
        return [self.generate(replace(request, n=1, variant=index)) for index in range(request.n)]

    def generate_with_previews(
        self,
        request: ImageRequest,
        on_preview: Callable[[PreviewImage], None],
        *,
        partials: int,
    ) -> GeneratedImage:
        """Make one picture like :meth:`generate`, calling ``on_preview`` with up to ``partials``
        rough versions while it is drawn.

        The default sends none: most providers cannot stream, and a preview is a courtesy to the
        waiting editor, never a promise. A backend whose provider can overrides this; it calls
        ``on_preview`` in its own thread, before it returns.
        """
        return self.generate(request)

    def describe(self, image: bytes, content_type: str, *, language: str, prompt: str) -> str:
        """Write alt text for ``image`` (validated bytes of ``content_type``), in ``language``.

        ``prompt`` is the instruction to a vision model, already in words (the language, the
        length); ``language`` is its code ("de") for a backend that writes the text itself. Raise
        a :class:`GenerationError` subclass when the provider fails. The default cannot describe:
        it raises ``NotImplementedError``, and the picture simply gets no alt text, because a
        picture without alt text is better than a picture late or lost for want of it.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot describe pictures")

    def size_for(self, aspect_ratio: str, size: tuple[int, int]) -> tuple[int, int]:
        """The size to ask for to draw ``aspect_ratio`` ("3:2") near the area of ``size``.

        The default keeps the area and rounds each side to a multiple of 64, which providers that
        take any size accept. A backend whose provider takes a fixed list overrides this, and
        raises :class:`UnsupportedAspectRatioError` for a ratio it cannot draw.
        """
        ratio_w, ratio_h = parse_ratio(aspect_ratio)
        area = size[0] * size[1]
        height = math.sqrt(area * ratio_h / ratio_w)
        width = height * ratio_w / ratio_h
        # A side beyond 64-8192 scales both, so that clamping it never changes the shape.
        scale = min(max(1.0, 64 / min(width, height)), 8192 / max(width, height))
        return _round64(width * scale), _round64(height * scale)

    def prepare(self) -> None:  # noqa: B027  (optional hook: most backends need nothing)
        """Do slow one-off set-up (imports, clients) once per worker, before the first job.

        Called when a Celery worker starts, never in the web process.
        """

    def check(self) -> list[CheckMessage]:
        """Return system-check messages about this backend's options; run at start-up."""
        return []
