"""The test project's admin: the app's mixin as a site would use it (tests/test_admin.py)."""

from __future__ import annotations

from django.contrib import admin

from page_images.admin import ImageGeneratingAdmin, ImageStateFilter
from tests.testapp.models import Page, Poster


@admin.register(Page)
class PageAdmin(ImageGeneratingAdmin, admin.ModelAdmin):
    list_display = ["__str__", "page_image_state"]
    list_filter = [ImageStateFilter]


@admin.register(Poster)
class PosterAdmin(ImageGeneratingAdmin, admin.ModelAdmin):
    """A model with its own image field (``artwork``) and fields the admin names itself."""

    fields = ["headline", "mood", "page_image_container", "artwork"]
    list_display = ["__str__", "page_image_state"]
