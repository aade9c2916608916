"""Provenance: the stored file says, in itself, that an AI model made it.

The EU AI Act (article 50(2)) asks that AI-generated pictures be marked in a machine-readable
way, and the large platforms (Google's search and Merchant Center, Meta) read that mark from IPTC's
digital source type in the file's XMP packet. So every stored picture gets a small XMP packet with
``Iptc4xmpExt:DigitalSourceType`` = ``trainedAlgorithmicMedia`` and, when the backend names it,
``Iptc4xmpExt:AISystemUsed`` (IPTC Photo Metadata 2025.1's property for "the AI engine and/or the
model name"; ``xmp:CreatorTool`` names software, ``photoshop:Credit`` the credit line a person is
owed, neither the model). The prompt is never written: it can hold what a record keeps private.

The packet is inserted as bytes, in the place each format's XMP specification gives it; no pixel
is re-encoded, so the picture decodes exactly as the one intake checked, and the marked bytes go
through intake again before they are stored. A file that already carries XMP or a C2PA manifest
(OpenAI, Adobe and Google sign theirs) is stored as it came: a second XMP packet would make the
file invalid, rewriting a provider's packet means rewriting XML that is not ours, and any byte
added to a C2PA-signed file breaks the signature's hash of the file, a provenance mark stronger
than ours, which already states the same source type.

Marking is an extra: whatever goes wrong in it (a structure this module does not know, a file
that the mark would push over ``MAX_BYTES``, a refusal by intake) costs the mark, never the picture.
"""

from __future__ import annotations

import itertools
import logging
import struct
import zlib
from typing import TYPE_CHECKING, NamedTuple, Protocol, TypeVar
from xml.sax.saxutils import escape

from page_images.conf import app_settings

if TYPE_CHECKING:
    from collections.abc import Callable

logger = logging.getLogger(__name__)

#: IPTC's term for "created by a model trained on sampled content", the one platforms look for.
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
IPTC_EXTENSION_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
#: A model name longer than this is cut: it is a label, and an APP1 segment has 64 KB in all.
MAX_MODEL_NAME = 200

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_XMP_KEYWORD = b"XML:com.adobe.xmp\0"
_JPEG_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\0"
_JPEG_EXTENDED_XMP_HEADER = b"http://ns.adobe.com/xmp/extension/\0"
_JPEG_APP0, _JPEG_APP1, _JPEG_APP11, _JPEG_SOS, _JPEG_EOI = 0xE0, 0xE1, 0xEB, 0xDA, 0xD9
_WEBP_XMP_FLAG, _WEBP_ALPHA_FLAG = 0x04, 0x10


class UnmarkableImageError(ValueError):
    """The file's structure is not one this module knows how to add a packet to."""


class _Part(NamedTuple):
    """A PNG chunk, JPEG segment or WebP chunk: its type, its byte span, its data's first bytes."""

    kind: bytes
    start: int
    end: int
    head: bytes


class _Image(Protocol):
    @property
    def content(self) -> bytes: ...

    @property
    def format(self) -> str: ...


ImageT = TypeVar("ImageT", bound=_Image)


def mark_ai_generated(
    image: ImageT, *, model: str = "", validate: Callable[[bytes], ImageT]
) -> ImageT:
    """``image`` marked as AI-generated and checked again by ``validate``, or ``image`` as it was.

    ``validate`` is intake's check (the task hands in ``recheck_image``: every rule but a second
    full decode of pixels that did not change), handed in so that this module stays below intake
    in the layers: the marked bytes pass the gate the provider's passed, so what was checked is
    still what is served. The image comes back unmarked, with a log line saying why, when the
    ``PROVENANCE`` setting is off, when it carries its provider's own marking, or when marking
    fails in any way: a picture that passed intake is never lost to its label.
    """
    if not app_settings.PROVENANCE:
        return image
    try:
        found = existing_marking(image.content, image.format)
        if found:
            logger.info("Picture stored as it came: it carries its provider's own %s", found)
            return image
        content = add_xmp(image.content, image.format, xmp_packet(model))
        if len(content) > app_settings.MAX_BYTES:
            logger.warning(
                "Picture stored unmarked: with its XMP packet it would be %d bytes, over "
                "MAX_BYTES %d",
                len(content),
                app_settings.MAX_BYTES,
            )
            return image
        return validate(content)
    except Exception:
        # Broad on purpose (see the docstring); even Celery's soft time limit, should it strike
        # here, finds the picture in hand and stored within milliseconds.
        logger.warning("Picture stored unmarked: marking it as AI-generated failed", exc_info=True)
        return image


def xmp_packet(model: str = "") -> bytes:
    """The XMP packet: the digital source type, and the model's name when there is one."""
    name = escape("".join(c for c in model if c.isprintable()).strip()[:MAX_MODEL_NAME])
    system = f"\n   <Iptc4xmpExt:AISystemUsed>{name}</Iptc4xmpExt:AISystemUsed>" if name else ""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        f'  <rdf:Description rdf:about="" xmlns:Iptc4xmpExt="{IPTC_EXTENSION_NS}">\n'
        f"   <Iptc4xmpExt:DigitalSourceType>{TRAINED_ALGORITHMIC_MEDIA}"
        f"</Iptc4xmpExt:DigitalSourceType>{system}\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode()


def existing_marking(content: bytes, format: str) -> str | None:
    """``"XMP"`` or ``"C2PA"`` when the file already carries that, else ``None``."""
    parts = _parts(content, format)
    if any(_is_c2pa(part, format) for part in parts):
        return "C2PA"
    if any(_is_xmp(part, format) for part in parts):
        return "XMP"
    return None


def add_xmp(content: bytes, format: str, packet: bytes) -> bytes:
    """``content`` with ``packet`` inserted where ``format``'s XMP specification puts it.

    Assumes the file carries no XMP yet (see :func:`existing_marking`). Raises
    :class:`UnmarkableImageError` for a structure it does not know.
    """
    parts = _parts(content, format)
    if format == "PNG":
        # Right after IHDR: before the first IDAT, where readers that stop at the pixels see it.
        # Keyword, then no compression, no language tag, no translated keyword: 4 zero bytes.
        chunk = _png_chunk(b"iTXt", _PNG_XMP_KEYWORD + b"\0\0\0\0" + packet)
        return _spliced(content, parts[0].end, chunk)
    if format == "JPEG":
        return _add_jpeg_xmp(content, parts, packet)
    return _add_webp_xmp(content, parts, packet)


def _parts(content: bytes, format: str) -> list[_Part]:
    readers = {"PNG": _png_chunks, "JPEG": _jpeg_segments, "WEBP": _webp_chunks}
    if format not in readers:
        raise UnmarkableImageError(f"no XMP writer for {format!r}")
    try:
        return readers[format](content)
    except struct.error as exc:  # a length field cut off by the end of the file
        raise UnmarkableImageError(f"{format} cut short: {exc}") from exc


def _is_c2pa(part: _Part, format: str) -> bool:
    if format == "PNG":
        return part.kind == b"caBX"
    if format == "JPEG":  # a JUMBF box in APP11 whose description is labelled "c2pa"
        return part.kind[0] == _JPEG_APP11 and b"c2pa" in part.head
    return part.kind == b"C2PA"


def _is_xmp(part: _Part, format: str) -> bool:
    if format == "PNG":
        return part.kind == b"iTXt" and part.head.startswith(_PNG_XMP_KEYWORD)
    if format == "JPEG":
        return part.kind[0] == _JPEG_APP1 and part.head.startswith(
            (_JPEG_XMP_HEADER, _JPEG_EXTENDED_XMP_HEADER)
        )
    return part.kind == b"XMP "


def _head(content: bytes, start: int, length: int) -> bytes:
    return content[start : start + min(length, 64)]


def _png_chunks(content: bytes) -> list[_Part]:
    if not content.startswith(_PNG_SIGNATURE):
        raise UnmarkableImageError("no PNG signature")
    parts: list[_Part] = []
    at = len(_PNG_SIGNATURE)
    while not parts or parts[-1].kind != b"IEND":
        (length,) = struct.unpack(">I", content[at : at + 4])
        end = at + 12 + length
        if end > len(content):
            raise UnmarkableImageError(f"PNG chunk at {at} runs past the end")
        parts.append(_Part(content[at + 4 : at + 8], at, end, _head(content, at + 8, length)))
        at = end
    if parts[0].kind != b"IHDR":
        raise UnmarkableImageError("PNG does not start with IHDR")
    return parts


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _jpeg_segments(content: bytes) -> list[_Part]:
    """The marker segments between SOI and the first scan, where a JPEG keeps its metadata."""
    if not content.startswith(b"\xff\xd8"):
        raise UnmarkableImageError("no JPEG start-of-image marker")
    parts: list[_Part] = []
    at = 2
    while True:
        marker = content[at : at + 2]
        if len(marker) < 2 or marker[0] != 0xFF:
            raise UnmarkableImageError(f"no JPEG marker at {at}")
        if marker[1] == 0xFF:  # a fill byte, allowed before any marker
            at += 1
            continue
        if marker[1] in (_JPEG_SOS, _JPEG_EOI):
            return parts
        (length,) = struct.unpack(">H", content[at + 2 : at + 4])
        end = at + 2 + length
        if length < 2 or end > len(content):
            raise UnmarkableImageError(f"JPEG segment at {at} has a bad length")
        parts.append(_Part(marker[1:], at, end, _head(content, at + 4, length - 2)))
        at = end


def _add_jpeg_xmp(content: bytes, parts: list[_Part], packet: bytes) -> bytes:
    """After SOI and the segments that must come first (JFIF's APP0, Exif's APP1)."""
    leading = list(itertools.takewhile(_comes_first_in_jpeg, parts))
    at = leading[-1].end if leading else 2
    payload = _JPEG_XMP_HEADER + packet
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return _spliced(content, at, segment)


def _comes_first_in_jpeg(part: _Part) -> bool:
    return part.kind[0] == _JPEG_APP0 or (
        part.kind[0] == _JPEG_APP1 and part.head.startswith(b"Exif\0")
    )


def _webp_chunks(content: bytes) -> list[_Part]:
    if content[:4] != b"RIFF" or content[8:12] != b"WEBP":
        raise UnmarkableImageError("no RIFF WEBP header")
    (size,) = struct.unpack("<I", content[4:8])
    if size + 8 != len(content):
        raise UnmarkableImageError(f"RIFF size {size} does not match {len(content)} bytes")
    parts: list[_Part] = []
    at = 12
    while at < len(content):
        (length,) = struct.unpack("<I", content[at + 4 : at + 8])
        end = at + 8 + length + (length & 1)  # chunks are padded to an even length
        if end > len(content):
            raise UnmarkableImageError(f"WebP chunk at {at} runs past the end")
        parts.append(_Part(content[at : at + 4], at, end, _head(content, at + 8, length)))
        at = end
    return parts


def _add_webp_xmp(content: bytes, parts: list[_Part], packet: bytes) -> bytes:
    """Set VP8X's XMP flag and add an ``XMP `` chunk at the end, after the image and any EXIF.

    A simple file (one VP8 or VP8L chunk) has no flags to set: it becomes the extended format,
    whose VP8X chunk gives the canvas size the bitstream already states.
    """
    xmp_chunk = b"XMP " + struct.pack("<I", len(packet)) + packet + b"\0" * (len(packet) & 1)
    first = parts[0] if parts else None
    if first is not None and first.kind == b"VP8X":
        flags = content[first.start + 8] | _WEBP_XMP_FLAG
        view = memoryview(content)
        body = b"".join(
            (view[12 : first.start + 8], bytes([flags]), view[first.start + 9 :], xmp_chunk)
        )
    elif first is not None and first.kind in (b"VP8 ", b"VP8L"):
        width, height, alpha = _webp_canvas(first)
        flags = _WEBP_XMP_FLAG | (_WEBP_ALPHA_FLAG if alpha else 0)
        vp8x = (
            b"VP8X"
            + struct.pack("<I", 10)
            + bytes([flags, 0, 0, 0])
            + (width - 1).to_bytes(3, "little")
            + (height - 1).to_bytes(3, "little")
        )
        body = b"".join((vp8x, memoryview(content)[12:], xmp_chunk))
    else:
        raise UnmarkableImageError("WebP starts with neither VP8X, VP8 nor VP8L")
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body


def _spliced(content: bytes, at: int, insert: bytes) -> bytes:
    # One copy of a picture of megabytes, where slicing and adding would make three.
    view = memoryview(content)
    return b"".join((view[:at], insert, view[at:]))


def _webp_canvas(chunk: _Part) -> tuple[int, int, bool]:
    """Width, height and whether alpha is used, from a VP8 or VP8L bitstream's header."""
    data = chunk.head
    if chunk.kind == b"VP8 ":
        # A key frame: 3-byte frame tag, start code, then 14-bit width and height (and scale bits).
        if len(data) < 10 or data[0] & 1 or data[3:6] != b"\x9d\x01\x2a":
            raise UnmarkableImageError("VP8 bitstream does not start with a key frame")
        width, height = struct.unpack("<HH", data[6:10])
        return width & 0x3FFF, height & 0x3FFF, False
    # VP8L: signature 0x2f, then 14 bits width - 1, 14 bits height - 1, 1 bit alpha_is_used.
    if len(data) < 5 or data[0] != 0x2F:
        raise UnmarkableImageError("VP8L bitstream has no signature")
    (bits,) = struct.unpack("<I", data[1:5])
    return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool(bits >> 28 & 1)
