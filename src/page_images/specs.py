"""What one generation asks for: the prompt, the preset, the size and how many pictures.

Built once, when the click is made, from the record, the settings and what the editor chose in the
panel, and written into the generation's history row; the job reads it back from there. So the
picture shows what the editor saw and sent, even if the settings change while it waits in the
queue, and a bad choice (an unknown preset, a ratio the backend cannot draw, a prompt too long)
is refused at the click with a message, never found out by the worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext as _

from page_images.backends import get_backend
from page_images.conf import app_settings, parse_size
from page_images.exceptions import (
    EmptyPromptError,
    InvalidChoiceError,
    UnsupportedAspectRatioError,
)

if TYPE_CHECKING:
    from page_images.models import ImageGeneratingMixin


@dataclass(frozen=True)
class GenerationSpec:
    #: What is sent to the model: the prompt with the preset's words.
    prompt: str
    #: What to draw, before the preset's words: the record's prompt or the editor's.
    subject: str
    #: The editor wrote the prompt: the record's text no longer decides what the picture shows.
    prompt_edited: bool = False
    preset: str = ""
    aspect_ratio: str = ""
    size: str = "1024x1024"
    quality: str | None = None
    variants: int = 1
    review: bool = False


class _Fields(dict[str, Any]):
    """The record's attributes by name, for ``PROMPT_TEMPLATE.format_map``; ``{prompt}`` is its
    own prompt."""

    def __init__(self, instance: ImageGeneratingMixin) -> None:
        super().__init__()
        self.instance = instance
        #: Some field the template names has a value: the record gives the picture a subject.
        self.filled = False

    def __missing__(self, key: str) -> Any:
        if key == "prompt":
            value: Any = self.instance.get_image_prompt()
        else:
            try:
                value = getattr(self.instance, key)
            except AttributeError:
                raise KeyError(key) from None
        value = "" if value is None else value
        self.filled = self.filled or bool(str(value).strip())
        return value


def record_prompt(instance: ImageGeneratingMixin) -> str:
    """The prompt a record asks for by itself: ``PROMPT_TEMPLATE`` over its fields, if set."""
    template = app_settings.PROMPT_TEMPLATE
    if not template:
        return instance.get_image_prompt()
    if "{prompt}" in template and not instance.get_image_prompt():
        return ""  # nothing to draw: the template's own words are not a subject
    fields = _Fields(instance)
    text = template.format_map(fields).strip()
    # Nor are they when every field the template names is empty ("Watercolour of: {image_text}"
    # over a record without text): the chip says there is nothing to draw, as without a template.
    return text if fields.filled else ""


def with_preset(prompt: str, preset: dict[str, Any]) -> str:
    """The preset's words added to ``prompt``; a preset may place it with ``{prompt}``."""
    words = str(preset.get("prompt") or "").strip()
    if not words:
        return prompt
    if "{prompt}" in words:
        return words.replace("{prompt}", prompt)
    return f"{prompt}\n\n{words}"


def reviewing() -> bool:
    """Whether new pictures wait for an editor's choice: REVIEW, or more than one to choose."""
    return app_settings.REVIEW or app_settings.VARIANTS > 1


def preset_label(name: str, preset: dict[str, Any]) -> str:
    return str(preset.get("label") or name)


def size_for(aspect_ratio: str, base: str) -> str:
    """The size the backend draws ``aspect_ratio`` at, given the site's (or preset's) size."""
    width, height = get_backend().size_for(aspect_ratio, parse_size(base))
    return f"{width}x{height}"


def build_spec(
    instance: ImageGeneratingMixin,
    *,
    prompt: str | None = None,
    preset: str | None = None,
    aspect_ratio: str | None = None,
) -> GenerationSpec:
    """What a click asks for; raises :class:`InvalidChoiceError` for a choice the site does not
    offer and :class:`EmptyPromptError` when there is nothing to draw."""
    own = record_prompt(instance)
    if prompt is not None:
        # Browsers send a textarea's line breaks as CRLF (HTML's form submission rules): a
        # record's text of several lines, sent back untouched, is not the editor's own prompt.
        prompt = prompt.replace("\r\n", "\n").replace("\r", "\n")
    edited = prompt is not None and prompt.strip() != own
    text = prompt.strip() if prompt is not None else own
    if not text:
        raise EmptyPromptError()
    if edited and len(text) > app_settings.MAX_PROMPT_LENGTH:
        raise InvalidChoiceError(
            _("The prompt is too long: at most %(count)d characters.")
            % {"count": app_settings.MAX_PROMPT_LENGTH}
        )
    presets = app_settings.PRESETS
    if preset is None or preset == "":
        preset = next(iter(presets), "")
    chosen: dict[str, Any] = {}
    if preset:
        if preset not in presets:
            raise InvalidChoiceError(_("That style is not offered any more. Reload the page."))
        chosen = presets[preset]
    size = str(chosen.get("size") or app_settings.SIZE)
    ratios = app_settings.ASPECT_RATIOS
    if aspect_ratio:
        if aspect_ratio not in ratios:
            raise InvalidChoiceError(_("That shape is not offered any more. Reload the page."))
        try:
            size = size_for(aspect_ratio, size)
        except UnsupportedAspectRatioError as exc:  # the system check E062 says so at start-up
            raise InvalidChoiceError(str(exc)) from exc
    quality = chosen.get("quality", app_settings.QUALITY)
    variants = max(1, app_settings.VARIANTS)
    return GenerationSpec(
        prompt=with_preset(text, chosen),
        subject=text,
        prompt_edited=edited,
        preset=preset,
        aspect_ratio=aspect_ratio or "",
        size=size,
        quality=None if quality is None else str(quality),
        variants=variants,
        review=reviewing(),
    )
