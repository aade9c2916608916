"""Pictures like a provider's: soft gradients and shapes with grain, saved as PNG."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw, ImageFilter

if TYPE_CHECKING:
    from pathlib import Path


def picture(side: int, grain: float = 24.0) -> bytes:
    """A ``side`` x ``side`` PNG; more ``grain`` makes the file larger for the same pixels."""
    size = (side, side)
    base = Image.merge(
        "RGB",
        [
            Image.linear_gradient("L").resize(size),
            Image.radial_gradient("L").resize(size),
            Image.linear_gradient("L").rotate(90).resize(size),
        ],
    )
    draw = ImageDraw.Draw(base)
    for i in range(40):
        x, y = (i * 97 * side // 1024) % side, (i * 53 * side // 1024) % side
        colour = ((i * 40) % 255, (i * 70) % 255, (i * 90) % 255)
        draw.ellipse([x, y, x + side // 6, y + side // 8], fill=colour)
    base = base.filter(ImageFilter.GaussianBlur(3))
    noise = Image.effect_noise(size, grain)
    picture = Image.blend(base, Image.merge("RGB", [noise, noise, noise]), 0.25)
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


def write(path: Path, side: int, grain: float = 24.0) -> int:
    content = picture(side, grain)
    path.write_bytes(content)
    return len(content)
