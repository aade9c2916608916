from __future__ import annotations

from django.contrib import admin

from stories.models import Page, Story


class PageInline(admin.TabularInline):
    model = Page
    fields = ["number", "image_text", "image", "image_alt"]
    extra = 0


@admin.register(Story)
class StoryAdmin(admin.ModelAdmin):
    inlines = [PageInline]


@admin.register(Page)
class PageAdmin(admin.ModelAdmin):
    list_display = ["__str__", "image_generating", "image_error"]
    readonly_fields = ["image_generating", "image_claimed_at", "image_error"]
