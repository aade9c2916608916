"""``{% load page_images %}``: the chip, the container, and the one event stream per page.

Thin wrappers over :mod:`page_images.rendering`, so the views render the same markup.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse

from page_images.models import ImageGeneratingMixin
from page_images.rendering import (
    chip_context,
    container_context,
    rendered_references,
    streaming_enabled,
)

register = template.Library()


def _checked(instance: Any) -> ImageGeneratingMixin:
    if not isinstance(instance, ImageGeneratingMixin):
        raise template.TemplateSyntaxError(
            "page_images tags need a record whose model uses ImageGeneratingMixin, "
            f"not {instance!r}"
        )
    return instance


@register.inclusion_tag("page_images/chip.html", takes_context=True)
def page_image_chip(context: template.Context, instance: Any) -> dict[str, Any]:
    """The "✨ Generate image" chip alone, shown when the record has no image and is not generating.

    Clicking it replaces the chip with the record's container, which then updates by itself.
    """
    record = _checked(instance)
    chip = chip_context(context.get("request"), record, target="this")
    chip["show"] = (
        not record.image_file and not record.image_generating and bool(chip["can_generate"])
    )
    chip["csrf_token"] = context.get("csrf_token")
    return chip


@register.inclusion_tag("page_images/container.html", takes_context=True)
def page_image(context: template.Context, instance: Any) -> dict[str, Any]:
    """The record's image container: chip, spinner, picture or error, kept up to date."""
    container = container_context(context.get("request"), _checked(instance))
    container["csrf_token"] = context.get("csrf_token")
    return container


@register.inclusion_tag("page_images/stream.html", takes_context=True)
def page_images_stream(context: template.Context) -> dict[str, Any]:
    """Once per page, after every chip and container: the script and the page's one event stream."""
    from page_images.events.stream import sign_references

    request = context.get("request")
    references = rendered_references(request)
    stream_url = ""
    if references and streaming_enabled(request):
        stream_url = f"{reverse('page_images:events')}?refs={sign_references(references)}"
    return {"stream_url": stream_url}
