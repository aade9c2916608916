"""A backend that needs no network and no key: it paints a picture from the prompt with Pillow.

It is the embedded default, so the example project and a new site's first run show the whole flow
(click, wait, picture) before anyone signs up with a provider. The picture is a real PNG, distinct
for each prompt and the same every time for one prompt, so tests can tell records apart.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import random
import textwrap
import time
from typing import TYPE_CHECKING, Any, cast

from django.core.checks import CheckMessage, Error
from django.utils.translation import gettext
from PIL import Image, ImageDraw, ImageFont, ImageOps

from page_images.backends.base import (
    BaseBackend,
    ContentPolicyError,
    GeneratedImage,
    ImageRequest,
    PreviewImage,
)

if TYPE_CHECKING:
    from collections.abc import Callable

#: How coarse each preview is: its blocks' side in pixels of a 1024 picture, first to last.
_COARSENESS = (128, 48, 16)


def _colour(rng: random.Random, hue: float, lightness: float) -> tuple[int, int, int]:
    red, green, blue = colorsys.hls_to_rgb(hue % 1.0, lightness, 0.55 + rng.random() * 0.35)
    return round(red * 255), round(green * 255), round(blue * 255)


def paint(prompt: str, width: int, height: int, variant: int = 0) -> bytes:
    """Paint a landscape whose colours and shapes come from the prompt's hash; return PNG bytes."""
    seed = prompt if not variant else f"{prompt}\x00{variant}"  # each variant its own picture
    rng = random.Random(hashlib.sha256(seed.encode()).digest())
    hue = rng.random()
    sky = ImageOps.colorize(
        Image.linear_gradient("L").resize((width, height)),
        black=_colour(rng, hue, 0.75),
        white=_colour(rng, hue + 0.08, 0.35),
    )
    draw = ImageDraw.Draw(sky)
    sun_r = min(width, height) * (0.06 + rng.random() * 0.08)
    sun_x, sun_y = rng.uniform(0.15, 0.85) * width, rng.uniform(0.12, 0.4) * height
    draw.ellipse(
        (sun_x - sun_r, sun_y - sun_r, sun_x + sun_r, sun_y + sun_r),
        fill=_colour(rng, hue + 0.5, 0.8),
    )
    for layer in range(3 + rng.randrange(3)):
        base = height * (0.55 + layer * 0.1)
        steps = 6 + rng.randrange(6)
        points = [(0.0, float(height))]
        for step in range(steps + 1):
            peak = base - rng.random() * height * 0.25
            points.append((width * step / steps, peak))
        points.append((float(width), float(height)))
        draw.polygon(points, fill=_colour(rng, hue + 0.25 + layer * 0.05, 0.45 - layer * 0.08))
    _caption(draw, prompt, width, height)
    out = io.BytesIO()
    sky.save(out, format="PNG")
    return out.getvalue()


#: Colour names by hue, from 0 (red) round the wheel: what the describer says it sees.
_HUES = (
    (0.04, "red"),
    (0.11, "orange"),
    (0.18, "yellow"),
    (0.45, "green"),
    (0.54, "teal"),
    (0.72, "blue"),
    (0.83, "purple"),
    (0.95, "pink"),
    (1.01, "red"),
)


def paint_coarse(prompt: str, width: int, height: int, variant: int, block: int) -> bytes:
    """The same picture as :func:`paint` in blocks of ``block`` pixels (of a 1024 side): what a
    provider's early partial looks like, the layout there and the detail not yet."""
    scale = max(width, height) / 1024
    side = max(1, round(block * scale))
    small = (max(1, width // side), max(1, height // side))
    with Image.open(io.BytesIO(paint(prompt, *small, variant))) as picture:
        coarse = picture.resize((width, height), Image.Resampling.NEAREST)
    out = io.BytesIO()
    coarse.save(out, format="PNG")
    return out.getvalue()


def colour_name(rgb: tuple[int, int, int]) -> str:
    """The everyday name of a colour: grey, black and white by lightness, others by hue."""
    hue, lightness, saturation = colorsys.rgb_to_hls(*(channel / 255 for channel in rgb))
    if lightness < 0.12:
        return "black"
    if lightness > 0.92:
        return "white"
    if saturation < 0.15:
        return "grey"
    name = next(name for limit, name in _HUES if hue < limit)
    if name == "orange" and lightness < 0.35:
        return "brown"
    return name


def describe_colours(content: bytes) -> str:
    """An honest description of a picture from its pixels alone: its two main colours.

    The painter knows no more than this about what it drew, and a picture from anywhere else is
    described no better, so it says so ("abstract") rather than guessing at subjects.
    """
    with Image.open(io.BytesIO(content)) as picture:
        small = picture.convert("RGB").resize((32, 32))
    counts: dict[str, int] = {}
    for count, pixel in small.getcolors(32 * 32) or []:
        name = colour_name(cast("tuple[int, int, int]", pixel))
        counts[name] = counts.get(name, 0) + count
    names = sorted(counts, key=lambda name: (-counts[name], name))[:2]
    tones = " and ".join(names)
    return f"An abstract picture in {tones} tones"


def _caption(draw: ImageDraw.ImageDraw, prompt: str, width: int, height: int) -> None:
    font_size = max(10, width // 32)
    font = ImageFont.load_default(size=font_size)
    lines = textwrap.wrap(prompt, width=max(10, int(width / (font_size * 0.6))))[:3]
    if not lines:
        return
    band = (len(lines) + 1) * font_size * 1.2
    draw.rectangle((0, height - band, width, height), fill=(0, 0, 0))
    for index, line in enumerate(lines):
        draw.text(
            (font_size * 0.6, height - band + font_size * (0.6 + index * 1.2)),
            line,
            font=font,
            fill=(255, 255, 255),
        )


class LocalBackend(BaseBackend):
    """Paints the picture in-process.

    Options: ``delay`` (seconds to wait first, so a demo shows the waiting state) and
    ``refuse_words`` (prompts containing any of them are refused like a provider's content policy,
    so a demo and the browser tests can show the error state).

    It also writes alt text (:meth:`describe`), in English, from the pixels alone: never the
    prompt, which is already on the page and would be read twice.
    """

    def __init__(
        self, *, delay: float = 0.0, refuse_words: list[str] | tuple[str, ...] = (), **options: Any
    ) -> None:
        super().__init__(delay=delay, refuse_words=refuse_words, **options)
        self.delay = float(delay)
        self.refuse_words = tuple(word.lower() for word in refuse_words)
        self.unknown_options = sorted(options)

    def check(self) -> list[CheckMessage]:
        if self.unknown_options:
            return [
                Error(
                    gettext("PAGE_IMAGES['OPTIONS'] has keys LocalBackend does not know: %(keys)s.")
                    % {"keys": ", ".join(self.unknown_options)},
                    hint=gettext("LocalBackend takes 'delay' and 'refuse_words'."),
                    id="page_images.E030",
                )
            ]
        return []

    def generate(self, request: ImageRequest) -> GeneratedImage:
        if self.delay:
            time.sleep(self.delay)
        return self._paint(request)

    def generate_with_previews(
        self,
        request: ImageRequest,
        on_preview: Callable[[PreviewImage], None],
        *,
        partials: int,
    ) -> GeneratedImage:
        """Send ``partials`` (at most 3) coarse versions spread evenly over ``delay``, then the
        picture: a provider's streamed partials, for a demo with no network."""
        count = max(0, min(partials, len(_COARSENESS)))
        step = self.delay / (count + 1)
        if count:
            self._refuse(request)  # a provider refuses before it draws, not after the previews
        for index in range(count):
            time.sleep(step)
            block = _COARSENESS[len(_COARSENESS) - count + index]
            content = paint_coarse(
                request.prompt, request.width, request.height, request.variant, block
            )
            on_preview(PreviewImage(content=content, index=index, content_type="image/png"))
        time.sleep(step)
        return self._paint(request)

    def _refuse(self, request: ImageRequest) -> None:
        lowered = request.prompt.lower()
        refused = [word for word in self.refuse_words if word in lowered]
        if refused:
            raise ContentPolicyError(detail=f"LocalBackend refuse_words matched {refused[0]!r}")

    def _paint(self, request: ImageRequest) -> GeneratedImage:
        self._refuse(request)
        content = paint(request.prompt, request.width, request.height, request.variant)
        return GeneratedImage(content=content, content_type="image/png", model="local")

    def describe(self, image: bytes, content_type: str, *, language: str, prompt: str) -> str:
        """The picture's main colours, in English whatever ``language``: a placeholder honest
        enough to ship in a demo, never the prompt."""
        return describe_colours(image)
