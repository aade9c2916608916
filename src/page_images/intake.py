"""Image intake: the one gate every byte from a provider passes before it reaches storage.

A provider, or whatever a provider's URL points at, may send anything: an HTML error page, an SVG
with script in it, a truncated file, or a few kilobytes that decode to gigabytes. Each rule below
answers one of those, and every refusal is an :class:`InvalidImageError` whose ``user_message`` an
editor can read and whose ``detail`` tells an operator why. The bytes that pass are stored exactly
as they came (not re-encoded), so what was checked is what is served.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.utils.translation import gettext_noop
from PIL import Image, UnidentifiedImageError

from page_images.conf import app_settings
from page_images.exceptions import InvalidImageError

if TYPE_CHECKING:
    from collections.abc import Iterable

#: The formats this module knows how to name and serve, keyed by Pillow's format name.
CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
#: Declared types that say nothing either way; Pillow's look at the bytes settles them.
NEUTRAL_TYPES = frozenset({"application/octet-stream", "binary/octet-stream"})
#: Pillow names a JPEG that carries extra frames "MPO"; its bytes are still a plain JPEG.
FORMAT_ALIASES = {"MPO": "JPEG"}

NOT_A_PICTURE = gettext_noop("The image service sent back something that is not a picture.")
TOO_LARGE = gettext_noop("The picture is larger than this site accepts.")
TOO_MANY_PIXELS = gettext_noop("The picture has more pixels than this site accepts.")
DAMAGED = gettext_noop("The picture that came back is damaged or incomplete.")

#: What Pillow's decoders raise on hostile or broken input. Caught so that bad bytes always end as
#: an InvalidImageError (a refusal the editor sees) and never as a crash of the job.
_DECODER_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    OverflowError,
    struct.error,
)
#: The above, plus Pillow's warnings about malformed files, turned into errors while decoding.
_BROKEN_INPUT: tuple[type[BaseException], ...] = (*_DECODER_ERRORS, UserWarning)


@dataclass(frozen=True)
class ValidatedImage:
    """Bytes known to be a whole, decodable image of an allowed format and size."""

    content: bytes
    format: str
    width: int
    height: int

    @property
    def extension(self) -> str:
        """The file extension to store under, from the real format, never from the provider."""
        return EXTENSIONS[self.format]

    @property
    def content_type(self) -> str:
        """The type to serve with, from the real format, so a browser never sniffs another."""
        return CONTENT_TYPES[self.format]


def normalize_formats(formats: Iterable[str] | None) -> tuple[str, ...]:
    """The allowed formats, upper-cased and limited to those we can name and serve.

    ``None`` means the ``ALLOWED_FORMATS`` setting. An unknown name is dropped rather than handed
    to Pillow, so a typo can never widen what is decoded.
    """
    chosen = app_settings.ALLOWED_FORMATS if formats is None else formats
    return tuple(dict.fromkeys(f.upper() for f in chosen if f.upper() in CONTENT_TYPES))


def allowed_content_types(formats: Iterable[str] | None = None) -> frozenset[str]:
    """The MIME types that go with ``formats`` (``None``: the ``ALLOWED_FORMATS`` setting)."""
    return frozenset(CONTENT_TYPES[f] for f in normalize_formats(formats))


def check_declared_type(declared_type: str | None, formats: Iterable[str] | None = None) -> None:
    """Refuse a declared type outside the allow-list, even if the bytes would pass.

    A URL that answers ``text/html`` or ``image/svg+xml`` is not serving a picture, whatever the
    bytes look like; refusing on the header alone also lets a download stop before the body.
    A missing or ``application/octet-stream`` type says nothing, so the bytes decide.
    """
    if declared_type is None:
        return
    base = declared_type.split(";", 1)[0].strip().lower()
    if not base or base in NEUTRAL_TYPES or base in allowed_content_types(formats):
        return
    raise InvalidImageError(NOT_A_PICTURE, detail=f"declared content type {declared_type!r}")


def check_size(content: bytes, max_bytes: int) -> None:
    """Refuse empty and oversized bodies before any parser sees them."""
    if not content:
        raise InvalidImageError(
            gettext_noop("The image service sent back an empty picture."), detail="0 bytes"
        )
    if len(content) > max_bytes:
        raise InvalidImageError(TOO_LARGE, detail=f"{len(content)} bytes > MAX_BYTES {max_bytes}")


def validate_image(
    content: bytes,
    *,
    declared_type: str | None = None,
    max_bytes: int | None = None,
    max_pixels: int | None = None,
    allowed_formats: Iterable[str] | None = None,
    decode: bool = True,
) -> ValidatedImage:
    """Return ``content`` as a :class:`ValidatedImage`, or raise :class:`InvalidImageError`.

    ``None`` arguments take their value from ``PAGE_IMAGES``. The declared type is only a veto:
    when it disagrees with the real format (``image/png`` on a JPEG), the real format wins if it is
    allowed, since that is what is stored and served. ``decode=False`` checks everything but the
    pixel data (see :func:`recheck_image`).
    """
    max_bytes = app_settings.MAX_BYTES if max_bytes is None else max_bytes
    max_pixels = app_settings.MAX_PIXELS if max_pixels is None else max_pixels
    formats = normalize_formats(allowed_formats)
    check_size(content, max_bytes)
    check_declared_type(declared_type, formats)
    if not formats:
        raise InvalidImageError(NOT_A_PICTURE, detail="no allowed image formats are configured")
    with warnings.catch_warnings():
        # Pillow warns before it errors on a decompression bomb, and warns (then carries on) on
        # malformed files; either is a reason to refuse. Scoped here, Pillow's globals untouched.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        warnings.simplefilter("error", UserWarning)
        try:
            return _decode(content, formats, max_pixels, decode)
        except InvalidImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise InvalidImageError(TOO_MANY_PIXELS, detail=str(exc)) from exc
        except UnidentifiedImageError as exc:
            raise InvalidImageError(
                NOT_A_PICTURE, detail=f"not one of {', '.join(formats)}: {content[:16]!r}"
            ) from exc
        except _BROKEN_INPUT as exc:
            raise InvalidImageError(DAMAGED, detail=f"{type(exc).__name__}: {exc}") from exc


def recheck_image(content: bytes) -> ValidatedImage:
    """Check again a picture whose pixels passed :func:`validate_image` and whose file then
    changed around them (provenance inserted a metadata chunk): every rule but the full decode.

    The decode is most of a job's own time (a 1024x1024 PNG takes tens of milliseconds), and the
    pixel data it would read is byte for byte the data already decoded; the structure that did
    change is still identified, sized and verified (PNG chunk CRCs included).
    """
    return validate_image(content, decode=False)


def _decode(
    content: bytes, formats: tuple[str, ...], max_pixels: int, decode: bool = True
) -> ValidatedImage:
    """Identify, size-check, verify and fully decode ``content``; refuse at the first failure.

    The explicit ``formats`` list means SVG, HTML, GIF, TIFF... are never handed to a decoder at
    all. The pixel count comes from the header, before a single pixel is decoded: that is the
    decompression-bomb guard, and it counts every frame, since an animated PNG or WebP of a
    thousand frames is a thousand pictures' worth of pixels to a browser. ``verify()`` checks
    structure (PNG chunk CRCs) but leaves the image unusable, so a second open and a full
    ``load()`` catch truncated or corrupt pixel data.
    """
    with Image.open(io.BytesIO(content), formats=list(formats)) as image:
        found = FORMAT_ALIASES.get(str(image.format), str(image.format))
        width, height = image.size
        frames = int(getattr(image, "n_frames", 1))
        if found not in formats:
            raise InvalidImageError(NOT_A_PICTURE, detail=f"format {image.format!r}")
        if width * height * frames > max_pixels:
            raise InvalidImageError(
                TOO_MANY_PIXELS,
                detail=f"{width}x{height}{f' x {frames} frames' if frames > 1 else ''} "
                f"> MAX_PIXELS {max_pixels}",
            )
        image.verify()
    if decode:
        with Image.open(io.BytesIO(content), formats=list(formats)) as image:
            image.load()
    return ValidatedImage(content=content, format=found, width=width, height=height)
