"""Alt text for new pictures: written after the picture is stored, never at its expense.

A picture is described once it is stored and announced, so the editor sees it first and a slow or
failing vision model costs the picture nothing: each description has ``ALT_TEXT["TIMEOUT"]``
seconds, in a thread of its own, and whatever goes wrong (a provider error, a hook that raises,
the time running out) is logged and leaves the alt text empty. Empty is ``alt=""``: the picture is
announced as decorative, which is right for an illustration of the text beside it, and better than
the paragraph read twice or a description of another picture.

Who may write the record's alt field, and when, is one rule, applied by one conditional UPDATE
wherever this app changes the picture (a new picture, an accepted candidate, a restore): **the
field is the app's to write while it is empty or still holds the alt text the app generated for
the picture being replaced.** Anything else was written by a person, for a reason this app cannot
know, and is never overwritten; the generated text is still kept on the picture's history row
(:attr:`page_images.history.Picture.alt_text`), where an editor can find it. The UPDATE also
requires the picture field to hold the picture described, so a description that arrives after an
editor moved on (another picture, a restore) lands nowhere but on its own history row.
"""

from __future__ import annotations

import io
import logging
import re
import threading
import time
from typing import TYPE_CHECKING, Any

from django.core.exceptions import FieldDoesNotExist
from django.db import connections
from django.db.models import CharField, Q, TextField
from django.utils.translation import get_language_info

from page_images import claims
from page_images.backends import get_describer
from page_images.conf import app_settings
from page_images.history import Picture
from page_images.models import ImageGeneratingMixin

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from page_images.intake import ValidatedImage

logger = logging.getLogger(__name__)

#: "Image of", "A picture showing"…: what screen readers already say, and models like to begin
#: with. English only: the instruction asks every model not to, in whatever language.
_PREAMBLE = re.compile(
    r"^\s*(?:an?\s+|the\s+)?(?:image|picture|photo(?:graph)?|illustration)\s+"
    r"(?:of|showing|shows|depicting|depicts)\s+",
    re.I,
)
#: Quotation marks a model may wrap its answer in.
_QUOTES = "\"'\u201c\u201d\u2018\u2019\u00ab\u00bb"
#: The longest side of the copy sent to a vision model: enough to describe, far fewer tokens
#: and bytes than the stored picture.
PREVIEW_SIDE = 768


def field_of(model: type[ImageGeneratingMixin]) -> CharField[Any, Any] | TextField[Any, Any] | None:
    """The model's alt text field, or None when it names none (or none that holds text: E081)."""
    if not model.image_alt_text_field:
        return None
    try:
        field = model._meta.get_field(model.image_alt_text_field)
    except FieldDoesNotExist:  # E081 says so at start-up; the job must not fail for it
        return None
    return field if isinstance(field, (CharField, TextField)) else None


def wanted(model: type[ImageGeneratingMixin]) -> bool:
    """Whether new pictures of ``model`` get alt text: it has a field for it, and a describer
    (``ALT_TEXT``) or its own :meth:`~ImageGeneratingMixin.describe_image`."""
    if field_of(model) is None:
        return False
    overridden = model.describe_image is not ImageGeneratingMixin.describe_image
    return overridden or app_settings.ALT_TEXT is not None


def max_length(model: type[ImageGeneratingMixin]) -> int:
    """The longest alt text kept: ``MAX_LENGTH``, or the field's own limit when shorter."""
    config = app_settings.ALT_TEXT or {}
    limit = int(config.get("MAX_LENGTH") or 250)
    field = field_of(model)
    if field is not None and field.max_length:
        limit = min(limit, int(field.max_length))
    return limit


def clean(text: str, limit: int) -> str:
    """One line of plain text, without quotes or an "Image of" preamble, cut at a word."""
    text = " ".join(str(text).split()).strip().strip(_QUOTES).strip()
    preamble = _PREAMBLE.match(text)
    if preamble and len(text) > preamble.end():
        rest = text[preamble.end() :]
        text = rest[0].upper() + rest[1:]
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0] if " " in text[: limit - 1] else text[: limit - 1]
    return cut.rstrip(" ,;:.-") + "…"


def language_name(code: str) -> str:
    """The language's English name for the instruction ("de" → "German"), else the code."""
    try:
        return str(get_language_info(code)["name"])
    except KeyError:
        return code


def instruction(language: str, limit: int) -> str:
    """``ALT_TEXT["PROMPT"]`` with the language and the length filled in."""
    config = app_settings.ALT_TEXT or {}
    template = str(config.get("PROMPT") or "")
    return template.replace("{language}", language_name(language)).replace(
        "{max_length}", str(limit)
    )


def preview(image: ValidatedImage) -> tuple[bytes, str]:
    """A smaller JPEG of the picture for a vision model; the picture itself when small enough."""
    if max(image.width, image.height) <= PREVIEW_SIDE:
        return image.content, _content_type(image)
    from PIL import Image  # here: the web side imports this module for accept and restore

    with Image.open(io.BytesIO(image.content)) as picture:
        copy = picture.convert("RGB")
    copy.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    out = io.BytesIO()
    copy.save(out, format="JPEG", quality=85)
    return out.getvalue(), "image/jpeg"


def _content_type(image: ValidatedImage) -> str:
    from page_images.intake import CONTENT_TYPES

    return CONTENT_TYPES[image.format]


def describe(instance: ImageGeneratingMixin, image: ValidatedImage) -> str:
    """The alt text for ``image``: the model's own hook's, else the describer's, cleaned; ``""``
    when neither writes one. Raises what they raise: :func:`describe_all` bounds and logs it."""
    language = instance.get_image_language()
    limit = max_length(type(instance))
    own = instance.describe_image(image.content, language=language)
    if own is not None:
        return clean(own, limit)
    describer = get_describer()
    if describer is None:
        return ""
    content, content_type = preview(image)
    text = describer.describe(
        content, content_type, language=language, prompt=instruction(language, limit)
    )
    return clean(text, limit)


def _bounded(calls: Sequence[Callable[[], str]], timeout: float, reference: str) -> list[str]:
    """Run ``calls`` at once, each in a daemon thread, and wait ``timeout`` seconds in all.

    A call still running then is left to finish on its own (its HTTP client has a timeout too)
    and its answer ignored: the job, and the worker's slot, are not held for a caption.
    """
    results: list[str] = [""] * len(calls)

    def run(index: int, call: Callable[[], str]) -> None:
        try:
            results[index] = call()
        except NotImplementedError as exc:
            logger.info("No alt text for %s: %s", reference, exc)
        except Exception:
            logger.warning("No alt text for %s: the description failed", reference, exc_info=True)
        finally:
            # A hook that read the database did so on this thread's own connection.
            for connection in connections.all(initialized_only=True):
                connection.close()

    threads = [
        threading.Thread(target=run, args=(index, call), name="page-images-alt", daemon=True)
        for index, call in enumerate(calls)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    late = [index for index, thread in enumerate(threads) if thread.is_alive()]
    if late:
        logger.warning(
            "No alt text for %s: no description within %.0f s (%d of %d)",
            reference,
            timeout,
            len(late),
            len(threads),
        )
    return ["" if index in late else text for index, text in enumerate(results)]


def describe_all(instance: ImageGeneratingMixin, images: Sequence[ValidatedImage]) -> list[str]:
    """The alt text of each picture, ``""`` for each that got none; never raises, never waits
    longer than ``ALT_TEXT["TIMEOUT"]`` (30 s without ALT_TEXT, for a model's own hook)."""
    config = app_settings.ALT_TEXT or {}
    timeout = float(config.get("TIMEOUT") or 30.0)
    calls = [lambda image=image: describe(instance, image) for image in images]
    return _bounded(calls, timeout, instance.image_reference)


def generated_for(instance: ImageGeneratingMixin, name: str) -> str:
    """The alt text this app generated for the file ``name``; ``""`` for one it did not (or for
    a model without an alt text field, which has nothing to compare it with)."""
    if not name or field_of(type(instance)) is None:
        return ""
    texts = Picture.objects.of(instance).filter(name=name).values_list("alt_text", flat=True)
    return next((text for text in texts if text), "")


def publish(instance: ImageGeneratingMixin, name: str, alt: str, *, previous: str = "") -> bool:
    """Put ``alt`` in the record's field, if the record shows ``name`` and the field is ours.

    The field is ours while it is empty or holds ``previous``, the text this app generated for
    the picture ``name`` took the place of (read before the picture changed: the history row
    that holds it may be pruned since). One conditional UPDATE, so an editor's own words, typed
    a second ago, are never overwritten. Updates ``instance`` and returns True when the field
    changed; the caller announces it.
    """
    field = field_of(type(instance))
    if field is None:
        return False
    image_attname = instance.image_file.field.attname
    ours = Q(**{field.attname: ""})
    if previous:
        ours |= Q(**{field.attname: previous})
    if field.null:
        ours |= Q(**{f"{field.attname}__isnull": True})
    updated = (
        claims.rows(type(instance), instance.pk, instance._state.db)
        .filter(ours, **{image_attname: name})
        .exclude(**{field.attname: alt})
        .update(**{field.attname: alt})
    )
    if updated:
        setattr(instance, field.attname, alt)
    return bool(updated)


def write(
    instance: ImageGeneratingMixin,
    pictures: Sequence[Picture],
    images: Sequence[ValidatedImage],
    *,
    previous: str = "",
) -> None:
    """Describe the new ``pictures`` (their ``images``), keep each text on its history row, and
    give the record's field the text of the picture it shows; announce a change. Never raises.

    ``previous`` is the text generated for the picture a live picture took the place of
    (:func:`generated_for`, read before it was replaced): still in the field, it describes
    another picture, and is replaced, by ``""`` if no description came.
    """
    if not pictures or not wanted(type(instance)):
        return
    try:
        texts = describe_all(instance, images)
        for picture, text in zip(pictures, texts, strict=True):
            if text:
                # Only an empty row: an editor may have corrected a candidate's text meanwhile.
                Picture.objects.filter(pk=picture.pk, alt_text="").update(alt_text=text)
                picture.alt_text = text
        # Candidates shown for review carry their text; a live picture's shows in the field.
        changed = any(
            text and picture.status == Picture.Status.CANDIDATE
            for picture, text in zip(pictures, texts, strict=True)
        )
        for picture, text in zip(pictures, texts, strict=True):
            # A live picture replaces the old picture's text; a candidate accepted while it was
            # being described finds the field as accepting it left it (its text was empty).
            changed |= publish(instance, picture.name, text, previous=previous)
        if changed:
            claims.notify(instance)
    except Exception:
        logger.exception("Alt text for %s could not be stored", instance.image_reference)


__all__ = [
    "clean",
    "describe",
    "describe_all",
    "field_of",
    "generated_for",
    "instruction",
    "publish",
    "wanted",
    "write",
]
