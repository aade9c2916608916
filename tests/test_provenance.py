"""Provenance (page_images.provenance): the XMP packet that says a picture is AI-generated.

Each format gets a packet that Pillow (and so any XMP reader) finds, in the place its specification
gives it, while the pixels decode exactly as before; a file with its provider's own marking is
left as it came; and nothing that goes wrong in marking ever costs the picture.
"""

from __future__ import annotations

import io
import logging
import struct
import zlib
from xml.etree import ElementTree

import pytest
from hypothesis import event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from PIL import Image, ImageSequence

from page_images import provenance
from page_images.exceptions import InvalidImageError
from page_images.intake import ValidatedImage, validate_image
from page_images.provenance import (
    IPTC_EXTENSION_NS,
    TRAINED_ALGORITHMIC_MEDIA,
    UnmarkableImageError,
    add_xmp,
    existing_marking,
    mark_ai_generated,
    xmp_packet,
)
from tests.support.fuzz import examples

FORMAT = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
#: An Exif block with an empty IFD: enough for Pillow to write an Exif segment or chunk.
EXIF = b"Exif\0\0II*\0\x08\0\0\0\0\0\0\0\0\0"


def picture(fmt: str, mode: str = "RGB", **options) -> bytes:
    """A small picture with one odd pixel, so that a decoder that moved anything would show it."""
    colour = (200, 80, 40, 128) if mode == "RGBA" else (200, 80, 40)
    image = Image.new(mode, (37, 21), colour if mode != "P" else 3)
    image.putpixel(
        (3, 4), (10, 200, 90, 255) if mode == "RGBA" else 7 if mode == "P" else (10, 200, 90)
    )
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def animation(fmt: str) -> bytes:
    frames = [Image.new("RGB", (16, 12), (40 * n, 90, 200 - 40 * n)) for n in range(3)]
    out = io.BytesIO()
    frames[0].save(out, format=fmt, save_all=True, append_images=frames[1:], duration=100)
    return out.getvalue()


VARIANTS = {
    "png": ("PNG", picture("PNG")),
    "png-palette": ("PNG", picture("PNG", "P")),
    "png-rgba": ("PNG", picture("PNG", "RGBA")),
    "jpeg-jfif": ("JPEG", picture("JPEG")),
    "jpeg-exif": ("JPEG", picture("JPEG", exif=EXIF)),
    "webp-vp8": ("WEBP", picture("WEBP")),
    "webp-vp8l": ("WEBP", picture("WEBP", lossless=True)),
    "webp-vp8l-alpha": ("WEBP", picture("WEBP", "RGBA", lossless=True)),
    "webp-vp8x-alpha": ("WEBP", picture("WEBP", "RGBA")),
    "webp-vp8x-exif": ("WEBP", picture("WEBP", exif=EXIF)),
    "png-animated": ("PNG", animation("PNG")),
    "webp-animated": ("WEBP", animation("WEBP")),
}


def xmp_properties(content: bytes) -> dict[str, str]:
    """The Iptc4xmpExt properties of the packet Pillow finds, by local name.

    ``Image.getxmp()`` needs defusedxml, which this project does not install; the packet is ours,
    so the standard library parses it.
    """
    with Image.open(io.BytesIO(content)) as image:
        raw = image.info["xmp"]
    root = ElementTree.fromstring(raw)
    prefix = f"{{{IPTC_EXTENSION_NS}}}"
    return {
        element.tag.removeprefix(prefix): element.text or ""
        for element in root.iter()
        if element.tag.startswith(prefix)
    }


def pixels(content: bytes) -> list[tuple[str, tuple[int, int], bytes]]:
    """Every frame's mode, size and pixels, as a decoder sees them."""
    with Image.open(io.BytesIO(content)) as image:
        frames = []
        for frame in ImageSequence.Iterator(image):
            frame.load()
            frames.append((frame.mode, frame.size, frame.tobytes()))
        return frames


def chunks(content: bytes, fmt: str) -> list[bytes]:
    """The chunk types (PNG, WebP) or marker bytes (JPEG, up to the scan) in file order."""
    return [part.kind for part in provenance._parts(content, fmt)]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_each_format_gets_a_packet_pillow_reads_and_the_same_pixels(variant):
    fmt, original = VARIANTS[variant]
    marked = add_xmp(original, fmt, xmp_packet("openai/gpt-image-1"))
    assert xmp_properties(marked) == {
        "DigitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
        "AISystemUsed": "openai/gpt-image-1",
    }
    assert pixels(marked) == pixels(original)
    checked = validate_image(marked)
    assert (checked.format, checked.content) == (fmt, marked)
    assert existing_marking(marked, fmt) == "XMP"
    assert len(marked) - len(original) < 600  # a few hundred bytes, whatever the picture's size


def test_png_the_packet_is_an_itxt_chunk_right_after_ihdr():
    marked = add_xmp(picture("PNG"), "PNG", xmp_packet())
    assert chunks(marked, "PNG")[:3] == [b"IHDR", b"iTXt", b"IDAT"]
    with Image.open(io.BytesIO(marked)) as image:
        assert "XML:com.adobe.xmp" in image.info  # Pillow's own name for the iTXt keyword
        image.verify()  # the chunk's CRC


@pytest.mark.parametrize(
    ("variant", "before"),
    [("jpeg-jfif", [0xE0]), ("jpeg-exif", [0xE0, 0xE1])],
)
def test_jpeg_the_packet_follows_jfif_and_exif_which_must_come_first(variant, before):
    fmt, original = VARIANTS[variant]
    marked = add_xmp(original, fmt, xmp_packet())
    kinds = [kind[0] for kind in chunks(marked, fmt)]
    assert kinds[: len(before) + 1] == [*before, 0xE1]
    xmp = provenance._parts(marked, fmt)[len(before)]
    assert marked[xmp.start + 4 :].startswith(b"http://ns.adobe.com/xap/1.0/\0<?xpacket")


@pytest.mark.parametrize(
    ("variant", "alpha"), [("webp-vp8", False), ("webp-vp8l", False), ("webp-vp8l-alpha", True)]
)
def test_webp_a_simple_file_becomes_vp8x_with_the_bitstreams_canvas(variant, alpha):
    fmt, original = VARIANTS[variant]
    marked = add_xmp(original, fmt, xmp_packet())
    assert chunks(marked, fmt) == [b"VP8X", chunks(original, fmt)[0], b"XMP "]
    flags = marked[20]
    assert flags & 0x04  # XMP
    assert bool(flags & 0x10) is alpha
    width = int.from_bytes(marked[24:27], "little") + 1
    height = int.from_bytes(marked[27:30], "little") + 1
    assert (width, height) == (37, 21)
    assert struct.unpack("<I", marked[4:8])[0] == len(marked) - 8


def test_webp_an_extended_file_gets_its_flag_and_the_chunk_after_exif():
    fmt, original = VARIANTS["webp-vp8x-exif"]
    marked = add_xmp(original, fmt, xmp_packet())
    assert chunks(marked, fmt) == [*chunks(original, fmt), b"XMP "]
    assert chunks(marked, fmt)[-2] == b"EXIF"
    assert marked[20] == original[20] | 0x04
    assert struct.unpack("<I", marked[4:8])[0] == len(marked) - 8


def test_webp_an_odd_sized_packet_is_padded_to_an_even_chunk():
    packet = xmp_packet("x")
    odd = packet if len(packet) % 2 else xmp_packet("xy")
    marked = add_xmp(picture("WEBP"), "WEBP", odd)
    assert len(marked) % 2 == 0
    assert xmp_properties(marked)["DigitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA


def test_jpeg_without_jfif_or_exif_gets_the_packet_right_after_soi():
    original = picture("JPEG")
    app0 = provenance._parts(original, "JPEG")[0]
    bare = original[:2] + original[app0.end :]  # JFIF's APP0 is optional to decoders
    marked = add_xmp(bare, "JPEG", xmp_packet())
    assert marked[2:4] == b"\xff\xe1"
    assert pixels(marked) == pixels(original)


def test_jpeg_fill_bytes_before_a_marker_are_stepped_over():
    original = picture("JPEG")
    padded = original[:2] + b"\xff\xff" + original[2:]  # any number of 0xFF may precede a marker
    assert pixels(padded) == pixels(original)
    marked = add_xmp(padded, "JPEG", xmp_packet())
    assert pixels(marked) == pixels(original)
    assert xmp_properties(marked)["DigitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA


def test_the_packet_escapes_the_model_name_and_leaves_out_what_xml_cannot_hold():
    name = xmp_properties(add_xmp(picture("PNG"), "PNG", xmp_packet(" a & <b>\x00\x1b ")))
    assert name["AISystemUsed"] == "a & <b>"
    long = xmp_properties(add_xmp(picture("PNG"), "PNG", xmp_packet("m" * 500)))
    assert long["AISystemUsed"] == "m" * provenance.MAX_MODEL_NAME


@pytest.mark.parametrize("model", ["", " ", "\x00"])
def test_without_a_model_name_only_the_source_type_is_written(model):
    marked = add_xmp(picture("JPEG"), "JPEG", xmp_packet(model))
    assert xmp_properties(marked) == {"DigitalSourceType": TRAINED_ALGORITHMIC_MEDIA}


# What a provider's own marking looks like: a packet of its own, or a C2PA manifest (its JUMBF box).
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _with_png_chunk(content: bytes, chunk: bytes) -> bytes:
    return content[:33] + chunk + content[33:]  # after the signature and IHDR


def _with_jpeg_segment(content: bytes, marker: int, payload: bytes) -> bytes:
    return (
        content[:2]
        + bytes([0xFF, marker])
        + struct.pack(">H", len(payload) + 2)
        + payload
        + (content[2:])
    )


def _with_webp_chunk(content: bytes, kind: bytes, data: bytes) -> bytes:
    body = content[12:] + kind + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body


def _png_with_xmp() -> bytes:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    return picture("PNG", pnginfo=info)


JUMBF = b"JP\x00\x01\x00\x00\x00\x01\x00\x00\x00\x40jumb\x00\x00\x00\x28jumdc2pa\x00\x11\x00\x10"
PROVIDER_MARKED = {
    "png-xmp": ("PNG", _png_with_xmp(), "XMP"),
    "jpeg-xmp": ("JPEG", picture("JPEG", xmp=b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>"), "XMP"),
    "jpeg-extended-xmp": (
        "JPEG",
        _with_jpeg_segment(
            picture("JPEG"), 0xE1, b"http://ns.adobe.com/xmp/extension/\0" + b"0" * 40
        ),
        "XMP",
    ),
    "webp-xmp": ("WEBP", picture("WEBP", xmp=b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>"), "XMP"),
    "png-c2pa": ("PNG", _with_png_chunk(picture("PNG"), _png_chunk(b"caBX", JUMBF[8:])), "C2PA"),
    "jpeg-c2pa": ("JPEG", _with_jpeg_segment(picture("JPEG"), 0xEB, JUMBF), "C2PA"),
    "webp-c2pa": ("WEBP", _with_webp_chunk(picture("WEBP", "RGBA"), b"C2PA", JUMBF[8:]), "C2PA"),
}


@pytest.mark.parametrize("variant", list(PROVIDER_MARKED))
def test_a_file_with_its_providers_own_marking_is_stored_as_it_came(variant, caplog):
    fmt, content, found = PROVIDER_MARKED[variant]
    image = validate_image(content)
    assert existing_marking(content, fmt) == found
    with caplog.at_level(logging.INFO, logger="page_images.provenance"):
        assert mark_ai_generated(image, model="m", validate=validate_image) is image
    assert f"carries its provider's own {found}" in caplog.text


def test_a_jpeg_app11_that_is_not_c2pa_does_not_count():
    content = _with_jpeg_segment(picture("JPEG"), 0xEB, b"JP\x00\x01 some other JUMBF box")
    assert existing_marking(content, "JPEG") is None


PNG, JPEG, WEBP = picture("PNG"), picture("JPEG"), picture("WEBP")
VP8L = picture("WEBP", lossless=True)


def _riff(body: bytes) -> bytes:
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body


UNMARKABLE = {
    "an unknown format": ("GIF", b"GIF89a"),
    "png without its signature": ("PNG", b"\x89PNX" + PNG[5:]),
    "png cut inside a chunk": ("PNG", PNG[:40]),
    "png cut inside a length": ("PNG", PNG[:35]),
    "png without IHDR first": ("PNG", PNG[:8] + _png_chunk(b"tEXt", b"a\0b") + PNG[8:]),
    "jpeg without SOI": ("JPEG", b"\xff\xd9" + JPEG[2:]),
    "jpeg without a marker": ("JPEG", JPEG[:2] + b"\x00" + JPEG[2:]),
    "jpeg ending in its header": ("JPEG", JPEG[:2]),
    "jpeg with a length past the end": ("JPEG", JPEG[:2] + b"\xff\xe0\xff\xff"),
    "jpeg with a length below 2": ("JPEG", JPEG[:2] + b"\xff\xe0\x00\x01" + JPEG[2:]),
    "webp without RIFF": ("WEBP", b"RIFX" + WEBP[4:]),
    "webp with a wrong RIFF size": ("WEBP", WEBP + b"\0\0"),
    "webp cut inside a chunk": ("WEBP", _riff(WEBP[12:-4])),
    "webp with no chunk": ("WEBP", _riff(b"")),
    "webp cut inside a chunk header": ("WEBP", _riff(WEBP[12:] + b"ab")),
    "webp starting with another chunk": ("WEBP", _riff(b"ICCP\x02\0\0\0ab" + WEBP[12:])),
    "vp8 without a key frame": ("WEBP", WEBP[:20] + bytes([WEBP[20] | 1]) + WEBP[21:]),
    "vp8 without its start code": ("WEBP", WEBP[:23] + b"\0\0\0" + WEBP[26:]),
    "vp8 too short": ("WEBP", _riff(b"VP8 \x04\0\0\0\0\0\0\0")),
    "vp8l without its signature": ("WEBP", VP8L[:20] + b"\x2e" + VP8L[21:]),
    "vp8l too short": ("WEBP", _riff(b"VP8L\x02\0\0\0\x2f\0")),
}


@pytest.mark.parametrize("case", list(UNMARKABLE))
def test_a_structure_it_does_not_know_is_refused_by_the_writer(case):
    fmt, content = UNMARKABLE[case]
    with pytest.raises(UnmarkableImageError):
        add_xmp(content, fmt, xmp_packet())


@pytest.mark.parametrize("case", list(UNMARKABLE))
def test_marking_that_fails_keeps_the_picture_and_says_so(case, caplog):
    fmt, content = UNMARKABLE[case]
    image = ValidatedImage(content=content, format=fmt, width=1, height=1)
    with caplog.at_level(logging.WARNING, logger="page_images.provenance"):
        assert mark_ai_generated(image, validate=validate_image) is image
    assert "Picture stored unmarked: marking it as AI-generated failed" in caplog.text
    assert "UnmarkableImageError" in caplog.text


def test_marked_bytes_that_intake_refuses_keep_the_unmarked_picture(caplog):
    image = validate_image(PNG)

    def refuse(content: bytes) -> ValidatedImage:
        raise InvalidImageError("The picture that came back is damaged or incomplete.")

    with caplog.at_level(logging.WARNING, logger="page_images.provenance"):
        assert mark_ai_generated(image, validate=refuse) is image
    assert "InvalidImageError" in caplog.text


def test_marked_bytes_go_through_validate_and_come_back_as_its_result():
    image = validate_image(JPEG)
    seen: list[bytes] = []

    def validate(content: bytes) -> ValidatedImage:
        seen.append(content)
        return validate_image(content)

    marked = mark_ai_generated(image, model="gpt-image-1", validate=validate)
    assert seen == [marked.content]
    assert (marked.format, marked.width, marked.height) == ("JPEG", 37, 21)
    assert xmp_properties(marked.content)["AISystemUsed"] == "gpt-image-1"


def test_a_mark_that_would_pass_max_bytes_is_left_out(settings, caplog):
    image = validate_image(PNG)
    settings.PAGE_IMAGES = {"MAX_BYTES": len(PNG) + 100}  # the picture fits; with its packet not
    with caplog.at_level(logging.WARNING, logger="page_images.provenance"):
        assert mark_ai_generated(image, validate=validate_image) is image
    assert f"over MAX_BYTES {len(PNG) + 100}" in caplog.text


def test_provenance_off_leaves_every_picture_alone(settings):
    settings.PAGE_IMAGES = {"PROVENANCE": False}

    def never(content: bytes) -> ValidatedImage:
        raise AssertionError("validate must not run")

    image = validate_image(PNG)
    assert mark_ai_generated(image, validate=never) is image


def decoded(content: bytes) -> object:
    """Every frame's pixels, or the error that stopped the decoding."""
    try:
        return pixels(content)
    except OSError as exc:
        return type(exc).__name__


@given(
    variant=st.sampled_from(sorted(VARIANTS)),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4),
    cut=st.none() | st.integers(0, 10_000),
)
@hypothesis_settings(max_examples=examples(300), deadline=None, database=None)
def test_whatever_intake_accepts_comes_out_as_it_was_or_marked_with_the_same_pixels(
    variant: str, edits: list[tuple[int, int]], cut: int | None
) -> None:
    content = VARIANTS[variant][1]
    changed = bytearray(content)
    for where, value in edits:
        changed[where % len(changed)] = value
    try:
        image = validate_image(bytes(changed if cut is None else changed[: cut % len(changed)]))
    except InvalidImageError:
        return
    marked = mark_ai_generated(image, validate=validate_image)
    event("marked" if marked is not image else "kept")
    if marked is not image:
        # Intake decodes an animation's first frame only, so a later frame may be damaged in
        # both: then both must fail alike.
        assert decoded(marked.content) == decoded(image.content)
        assert xmp_properties(marked.content)["DigitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
