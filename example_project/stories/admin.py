from __future__ import annotations

from django.contrib import admin

from page_images.admin import ImageGeneratingAdmin, ImageStateFilter
from stories.models import Page, Story


class PageInline(admin.TabularInline):
    model = Page
    fields = ["number", "image_text", "image", "image_alt"]
    extra = 0


@admin.register(Story)
class StoryAdmin(admin.ModelAdmin):
    inlines = [PageInline]


@admin.register(Page)
class PageAdmin(ImageGeneratingAdmin, admin.ModelAdmin):
    """The live container beside the image field, a thumbnail and state column, a filter by
    state and the "Generate images for the selected" action (page_images.admin)."""

    list_display = ["__str__", "page_image_state"]
    list_filter = [ImageStateFilter, "story"]
