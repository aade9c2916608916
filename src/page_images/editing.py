"""What the editor's panels show: the prompt to edit, the choices offered, the pictures to pick.

Only an editor's container asks for any of this (the prompt panel, a review, the earlier pictures),
and only when it shows them, so a page of pictures for visitors costs no query here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from page_images import pictures
from page_images.conf import app_settings
from page_images.history import Generation
from page_images.specs import preset_label, record_prompt

if TYPE_CHECKING:
    from page_images.models import ImageGeneratingMixin


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    selected: bool


@dataclass(frozen=True)
class Thumbnail:
    id: int
    url: str
    alt: str


def _thumbnails(instance: ImageGeneratingMixin, found: list[Any]) -> list[Thumbnail]:
    storage = pictures.storage_of(instance)
    return [Thumbnail(picture.pk, storage.url(picture.name), picture.alt_text) for picture in found]


def candidates(instance: ImageGeneratingMixin) -> list[Thumbnail]:
    """The pictures of the review waiting on this record, in the order they were made."""
    return _thumbnails(instance, pictures.candidates(instance))


def _last(instance: ImageGeneratingMixin) -> Generation | None:
    return Generation.objects.of(instance).first()


def panel_context(
    instance: ImageGeneratingMixin, panel: str, prompt: str | None = None
) -> dict[str, Any]:
    """The values of the "compose" panel (the prompt, presets, aspect ratios) or of the
    "earlier" one (the pictures "Restore" can bring back)."""
    if panel == "earlier":
        return {"earlier": _thumbnails(instance, pictures.earlier(instance))}
    last = _last(instance)
    reason = instance.image_error_message if instance.image_state == "error" else ""
    if prompt is None:
        # After a refusal the editor gets the text that was refused, to change it; otherwise
        # the text the record asks for now.
        prompt = last.subject if reason and last is not None and last.subject else ""
        prompt = prompt or record_prompt(instance)
    chosen_preset = last.preset if last is not None else ""
    chosen_ratio = last.aspect_ratio if last is not None else ""
    presets = app_settings.PRESETS
    ratios = app_settings.ASPECT_RATIOS
    return {
        "draft": prompt,
        "reason": reason,
        "max_length": app_settings.MAX_PROMPT_LENGTH,
        "presets": [
            Choice(name, preset_label(name, spec), name == chosen_preset)
            for name, spec in presets.items()
        ],
        "aspect_ratios": [
            Choice(ratio, ratio, ratio == chosen_ratio or (not chosen_ratio and index == 0))
            for index, ratio in enumerate(ratios)
        ],
        "variants": max(1, app_settings.VARIANTS),
        "replace": bool(instance.image_file),
    }
