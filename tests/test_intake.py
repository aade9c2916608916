"""Intake: only whole, decodable PNG/JPEG/WEBP of an acceptable size gets through."""

from __future__ import annotations

import io
import random
import struct
import warnings
import zlib
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from page_images.exceptions import InvalidImageError
from page_images.intake import (
    DAMAGED,
    NOT_A_PICTURE,
    TOO_LARGE,
    TOO_MANY_PIXELS,
    ValidatedImage,
    recheck_image,
    validate_image,
)
from tests.reliability import case
from tests.support.fuzz import examples

if TYPE_CHECKING:
    from collections.abc import Callable

    from pytest_django.fixtures import Settings

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def image_bytes(fmt: str, size: tuple[int, int] = (32, 24), *, noisy: bool = False) -> bytes:
    """A real image made by Pillow; ``noisy`` makes pixel data that does not compress away."""
    image = Image.new("RGB", size, (200, 80, 40))
    if noisy:
        rng = random.Random(1)
        image.putdata(
            [tuple(rng.randrange(256) for _ in range(3)) for _ in range(size[0] * size[1])]
        )
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def blank_png(width: int, height: int) -> bytes:
    """A valid, all-black 1-bit PNG of any size, built row by row so memory stays small.

    This is what a decompression bomb is: 14000x14000 pixels in a few tens of kilobytes. Writing it
    by hand spares the 25 MB that ``Image.new("1", ...)`` would need for the same file.
    """
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def idat_offset(png: bytes) -> int:
    """Where the first IDAT chunk's data starts."""
    return png.index(b"IDAT") + 4


@pytest.fixture(scope="module")
def png() -> bytes:
    return image_bytes("PNG", noisy=True)


# --- Accepted ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "extension", "content_type"),
    [("PNG", "png", "image/png"), ("JPEG", "jpg", "image/jpeg"), ("WEBP", "webp", "image/webp")],
)
def test_valid_images_pass_unchanged(fmt: str, extension: str, content_type: str) -> None:
    content = image_bytes(fmt)
    image = validate_image(content, declared_type=content_type)
    assert image == ValidatedImage(content=content, format=fmt, width=32, height=24)
    assert image.content is content  # stored as it came, not re-encoded
    assert image.extension == extension
    assert image.content_type == content_type


@pytest.mark.parametrize(
    "declared", [None, "application/octet-stream", "IMAGE/PNG; charset=binary", " image/png "]
)
def test_neutral_or_matching_declared_types_pass(declared: str | None) -> None:
    assert validate_image(image_bytes("PNG"), declared_type=declared).format == "PNG"


def test_real_format_wins_over_a_wrong_declared_type() -> None:
    image = validate_image(image_bytes("JPEG"), declared_type="image/png")
    assert (image.format, image.extension, image.content_type) == ("JPEG", "jpg", "image/jpeg")


def test_multi_frame_jpeg_is_stored_as_jpeg() -> None:
    # Pillow calls a JPEG with extra frames "MPO"; the bytes are still a JPEG a browser shows.
    out = io.BytesIO()
    first, second = Image.new("RGB", (16, 16), "red"), Image.new("RGB", (16, 16), "blue")
    first.save(out, format="MPO", save_all=True, append_images=[second])
    assert validate_image(out.getvalue(), allowed_formats=["JPEG"]).format == "JPEG"


def test_a_decoder_that_names_another_format_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pillow picks its decoder by the allowed names, but a decoder may name what it opened
    # otherwise (JPEG's names a multi-frame JPEG "MPO"): a name not known to mean an allowed
    # format is refused, whatever decoder produced it.
    factory, accept = Image.OPEN["PNG"]

    def renaming(*args: object, **kwargs: object) -> Image.Image:
        image = factory(*args, **kwargs)
        image.format = "APNG"
        return image

    monkeypatch.setitem(Image.OPEN, "PNG", (renaming, accept))
    with pytest.raises(InvalidImageError, match="not a picture") as caught:
        validate_image(image_bytes("PNG"))
    assert caught.value.detail == "format 'APNG'"


def test_allowed_formats_are_case_insensitive() -> None:
    assert validate_image(image_bytes("PNG"), allowed_formats=["png"]).format == "PNG"


def test_none_arguments_come_from_settings(settings: Settings) -> None:
    content = image_bytes("PNG")
    settings.PAGE_IMAGES = {"MAX_BYTES": len(content) - 1}
    with pytest.raises(InvalidImageError, match="larger"):
        validate_image(content)
    settings.PAGE_IMAGES = {"ALLOWED_FORMATS": ["JPEG"]}
    with pytest.raises(InvalidImageError):
        validate_image(content)
    settings.PAGE_IMAGES = {"MAX_PIXELS": 100}
    with pytest.raises(InvalidImageError, match="more pixels"):
        validate_image(content)


# --- Refused before any parser ----------------------------------------------------------------


def test_empty_bytes_are_refused() -> None:
    with pytest.raises(InvalidImageError) as caught:
        validate_image(b"")
    assert caught.value.detail == "0 bytes"


def test_too_many_bytes_are_refused() -> None:
    content = image_bytes("PNG")
    assert validate_image(content, max_bytes=len(content)).format == "PNG"
    with pytest.raises(InvalidImageError) as caught:
        validate_image(content, max_bytes=len(content) - 1)
    assert caught.value.user_message == TOO_LARGE
    assert str(len(content)) in caught.value.detail


@case(
    "provider-bytes",
    "A real PNG declared as text/html or image/svg+xml",
    "'The image service sent back something that is not a picture.'",
)
@pytest.mark.parametrize(
    "declared",
    ["text/html", "text/html; charset=utf-8", "image/svg+xml", "image/gif", "text/plain"],
)
def test_declared_types_outside_the_list_are_refused_even_for_a_real_png(declared: str) -> None:
    with pytest.raises(InvalidImageError) as caught:
        validate_image(image_bytes("PNG"), declared_type=declared)
    assert caught.value.user_message == NOT_A_PICTURE
    assert declared in caught.value.detail


def test_declared_type_of_a_format_not_allowed_is_refused() -> None:
    with pytest.raises(InvalidImageError):
        validate_image(image_bytes("PNG"), declared_type="image/png", allowed_formats=["JPEG"])


# --- Refused by format ------------------------------------------------------------------------

SVG = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b"<script>alert(1)</script></svg>"
)
HTML = b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>"


@case(
    "provider-bytes",
    "SVG (with a script), an HTML error page, JSON, GIF, BMP or TIFF bytes",
    "'The image service sent back something that is not a picture.'",
)
@pytest.mark.parametrize(
    ("content", "name"),
    [
        (SVG, "svg"),
        (HTML, "html"),
        (b'{"error": "rate limited"}', "json"),
        (image_bytes("GIF"), "gif"),
        (image_bytes("BMP"), "bmp"),
        (image_bytes("TIFF"), "tiff"),
        (PNG_SIGNATURE, "png signature only"),
    ],
)
def test_non_images_and_other_formats_are_refused(content: bytes, name: str) -> None:
    with pytest.raises(InvalidImageError) as caught:
        validate_image(content)
    assert caught.value.user_message in (NOT_A_PICTURE, DAMAGED), name


def test_png_not_in_allowed_formats_is_refused() -> None:
    with pytest.raises(InvalidImageError, match="not a picture"):
        validate_image(image_bytes("PNG"), allowed_formats=["JPEG", "WEBP"])


def test_unknown_allowed_formats_are_ignored_not_decoded() -> None:
    # GIF is not a format this app serves: naming it must not make Pillow decode GIFs.
    with pytest.raises(InvalidImageError) as caught:
        validate_image(image_bytes("GIF"), allowed_formats=["GIF"])
    assert "no allowed image formats" in caught.value.detail


# --- Refused as damaged -----------------------------------------------------------------------


@case(
    "provider-bytes",
    "A truncated PNG, JPEG or WebP",
    "'The picture that came back is damaged or incomplete.'",
)
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_truncated_images_are_refused(fmt: str) -> None:
    content = image_bytes(fmt, (64, 64), noisy=True)
    with pytest.raises(InvalidImageError) as caught:
        validate_image(content[: len(content) // 2])
    assert caught.value.user_message in (DAMAGED, NOT_A_PICTURE)


@case(
    "provider-bytes",
    "A PNG with damaged pixel data",
    "'The picture that came back is damaged or incomplete.'",
)
def test_png_with_a_corrupted_idat_byte_is_refused(png: bytes) -> None:
    position = idat_offset(png) + 10
    corrupt = png[:position] + bytes([png[position] ^ 0xFF]) + png[position + 1 :]
    with pytest.raises(InvalidImageError) as caught:
        validate_image(corrupt)
    assert caught.value.user_message == DAMAGED


def test_png_with_garbage_idat_and_fixed_crc_is_refused(png: bytes) -> None:
    # A correct CRC gets past verify(); only the full decode sees the data is not zlib.
    start = idat_offset(png)
    (length,) = struct.unpack(">I", png[start - 8 : start - 4])
    garbage = bytes(range(256)) * (length // 256 + 1)
    body = _chunk(b"IDAT", garbage[:length])
    forged = png[: start - 8] + body + png[start + length + 4 :]
    with pytest.raises(InvalidImageError) as caught:
        validate_image(forged)
    assert caught.value.user_message == DAMAGED


def _insert_before(png: bytes, tag: bytes, chunk: bytes) -> bytes:
    position = png.index(tag) - 4
    return png[:position] + chunk + png[position:]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda png: png[:-12], id="IEND cut off"),
        pytest.param(
            lambda png: _insert_before(png, b"IEND", _chunk(b"tEXt", b"k\x00v")[:-4] + b"XXXX"),
            id="bad CRC after the pixels",
        ),
    ],
)
def test_damage_after_the_pixel_data_is_refused(
    png: bytes, damage: Callable[[bytes], bytes]
) -> None:
    # The pixels decode fine here; only verify() reads the file to its end and checks every CRC.
    with pytest.raises(InvalidImageError) as caught:
        validate_image(damage(png))
    assert caught.value.user_message == DAMAGED


def test_malformed_file_is_refused_where_pillow_only_warns(png: bytes) -> None:
    # Pillow warns "Invalid APNG" and carries on; what a browser would make of it is anyone's
    # guess, and these bytes would be served as they are. Refused whatever the warning filters.
    malformed = _insert_before(png, b"IDAT", _chunk(b"acTL", struct.pack(">II", 0, 0)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InvalidImageError) as caught:
            validate_image(malformed)
    assert caught.value.user_message == DAMAGED
    assert "Invalid APNG" in caught.value.detail


# --- Decompression bombs ----------------------------------------------------------------------


def test_blank_png_helper_makes_real_pngs() -> None:
    with Image.open(io.BytesIO(blank_png(300, 200))) as image:
        image.load()
        assert (image.format, image.size, image.mode) == ("PNG", (300, 200), "1")


def test_pixel_cap_refuses_from_the_header_without_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    content = blank_png(6000, 6000)  # 36 Mpx: over MAX_PIXELS' 25 Mpx, under Pillow's own limit
    assert len(content) < 100_000

    def no_decoding(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(InvalidImageError) as caught:
        validate_image(content)
    assert caught.value.user_message == TOO_MANY_PIXELS
    assert "6000x6000 > MAX_PIXELS 25000000" in caught.value.detail


def test_pixel_cap_applies_even_if_pillow_limit_is_disabled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(InvalidImageError, match="more pixels"):
        validate_image(blank_png(20000, 20000))


@case(
    "provider-bytes",
    "A decompression bomb: a tiny file declaring 20000 x 20000 pixels",
    "'The picture has more pixels than this site accepts.'; refused from the header, "
    "never decoded.",
)
def test_tiny_file_declaring_20000x20000_is_refused() -> None:
    content = blank_png(20000, 20000)  # 400 Mpx in about 50 kB
    assert len(content) < 200_000
    with pytest.raises(InvalidImageError) as caught:
        validate_image(content)
    assert caught.value.user_message == TOO_MANY_PIXELS


@case(
    "provider-bytes",
    "Pillow's own decompression-bomb guard fires",
    "'The picture has more pixels than this site accepts.'",
)
@pytest.mark.parametrize(
    ("side", "kind"),
    [(10_000, "warning"), (14_000, "error")],  # 100 Mpx > MAX_IMAGE_PIXELS; 196 Mpx > twice it
)
def test_pillows_own_bomb_guard_is_a_refusal(side: int, kind: str) -> None:
    assert Image.MAX_IMAGE_PIXELS is not None
    limit = Image.MAX_IMAGE_PIXELS
    assert (side * side > 2 * limit) == (kind == "error")
    filters_before = list(warnings.filters)
    with warnings.catch_warnings():
        # Even where the project ignores warnings, Pillow's bomb warning must refuse the image.
        warnings.simplefilter("ignore")
        with pytest.raises(InvalidImageError) as caught:
            validate_image(blank_png(side, side), max_pixels=10**12)
    assert caught.value.user_message == TOO_MANY_PIXELS
    assert "decompression bomb" in caught.value.detail
    assert isinstance(
        caught.value.__cause__, (Image.DecompressionBombWarning, Image.DecompressionBombError)
    )
    assert limit == Image.MAX_IMAGE_PIXELS
    assert warnings.filters == filters_before
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# --- Properties -------------------------------------------------------------------------------

FUZZ_SETTINGS = hypothesis_settings(
    max_examples=examples(200),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
SEED_PNG = image_bytes("PNG", (8, 8), noisy=True)
PREFIXES = [b"", PNG_SIGNATURE, b"\xff\xd8\xff\xe0", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"GIF89a"]


def _validate_or_refuse(content: bytes) -> None:
    """Anything but an InvalidImageError escaping is a bug; a pass must be a decodable image."""
    try:
        image = validate_image(content, max_bytes=1_000_000, max_pixels=1_000_000)
    except InvalidImageError:
        return
    with Image.open(io.BytesIO(image.content)) as reopened:
        reopened.load()
        assert reopened.size == (image.width, image.height)
    assert image.format in ("PNG", "JPEG", "WEBP")


@case(
    "fuzzing",
    "Image intake with random bytes (hypothesis)",
    "Only ever a readable refusal (InvalidImageError); never another exception.",
)
@FUZZ_SETTINGS
@given(prefix=st.sampled_from(PREFIXES), tail=st.binary(max_size=512))
def test_random_bytes_only_ever_raise_invalid_image(prefix: bytes, tail: bytes) -> None:
    _validate_or_refuse(prefix + tail)


@case(
    "fuzzing",
    "Image intake with mutated and cut PNGs (hypothesis)",
    "A valid picture or a readable refusal; never another exception.",
)
@FUZZ_SETTINGS
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(SEED_PNG) - 1), st.integers(0, 255)), min_size=1, max_size=6
    ),
    cut=st.integers(1, len(SEED_PNG)),
)
def test_mutated_pngs_only_ever_raise_invalid_image(edits: list[tuple[int, int]], cut: int) -> None:
    content = bytearray(SEED_PNG)
    for position, value in edits:
        content[position] = value
    _validate_or_refuse(bytes(content[:cut]))


def animated_png(frames: int, size: int = 100) -> bytes:
    pictures = [Image.new("RGB", (size, size), (n * 8 % 256, 0, 0)) for n in range(frames)]
    out = io.BytesIO()
    pictures[0].save(out, format="PNG", save_all=True, append_images=pictures[1:])
    return out.getvalue()


@case(
    "provider-bytes",
    "An animated PNG or WebP whose frames together pass MAX_PIXELS",
    "Refused: every frame counts against MAX_PIXELS.",
)
def test_every_frame_of_an_animation_counts_against_max_pixels():
    assert validate_image(animated_png(1), max_pixels=100_000).width == 100
    with pytest.raises(InvalidImageError) as caught:
        validate_image(animated_png(30), max_pixels=100_000)
    assert caught.value.user_message == TOO_MANY_PIXELS
    assert "100x100 x 30 frames > MAX_PIXELS 100000" in caught.value.detail


# --- Checked again after provenance changed the file ------------------------------------------


def test_a_recheck_keeps_every_rule_but_the_second_decode(png: bytes) -> None:
    # Pixel data cut short inside a chunk whose CRC still matches: only a full decode sees it.
    cut = blank_png(64, 64)
    start = idat_offset(cut)
    (length,) = struct.unpack(">I", cut[start - 8 : start - 4])
    data = cut[start : start + length][:-6]
    broken = cut[: start - 8] + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")
    with pytest.raises(InvalidImageError):
        validate_image(broken)
    assert recheck_image(broken).width == 64  # the pixels were decoded once already
    assert recheck_image(png) == validate_image(png)
    with pytest.raises(InvalidImageError, match=NOT_A_PICTURE):
        recheck_image(b"<html>not a picture</html>")
    at = idat_offset(png) + 10  # a byte of pixel data: the chunk's CRC no longer matches
    with pytest.raises(InvalidImageError, match=DAMAGED):
        recheck_image(png[:at] + bytes([png[at] ^ 0xFF]) + png[at + 1 :])
