"""The seed's shape: stories of pages, each page illustrated from its ``image_text``."""

from __future__ import annotations

from django.db import models

from page_images.models import ImageGeneratingMixin


class Story(models.Model):
    title = models.CharField(max_length=200)
    channel = models.SlugField(default="stories")

    class Meta:
        verbose_name_plural = "stories"
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.title


class Page(ImageGeneratingMixin, models.Model):
    story = models.ForeignKey(Story, on_delete=models.CASCADE, related_name="pages")
    number = models.PositiveIntegerField()
    image_text = models.TextField(help_text="What the illustration should show.")
    image_alt = models.TextField(
        "alt text",
        max_length=250,
        blank=True,
        help_text="What the picture shows, for those who cannot see it. Written for each new "
        "picture unless you write your own.",
    )

    image_prompt_field = "image_text"
    image_alt_text_field = "image_alt"

    class Meta:
        ordering = ["story", "number"]

    def __str__(self) -> str:
        return f"{self.story}, page {self.number}"

    def get_image_channel(self) -> str:
        return self.story.channel
