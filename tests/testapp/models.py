"""Concrete models for the tests: the seed's Story/Page, a model with its own image field, and one
that does not use the mixin at all."""

from __future__ import annotations

from django.db import models

from page_images.models import ImageGeneratingMixin


class Story(models.Model):
    title = models.CharField(max_length=200)
    channel = models.CharField(max_length=100, default="main")

    def __str__(self) -> str:
        return self.title


class Page(ImageGeneratingMixin, models.Model):
    """The seed's shape: the prompt is the ``image_text`` field; the channel is the story's."""

    story = models.ForeignKey(Story, on_delete=models.CASCADE, related_name="pages")
    image_text = models.TextField(blank=True)
    image_alt = models.CharField(max_length=250, blank=True)

    image_prompt_field = "image_text"
    image_alt_text_field = "image_alt"

    def __str__(self) -> str:
        return f"Page {self.pk} of {self.story_id}"

    def get_image_channel(self) -> str:
        return self.story.channel


class Poster(ImageGeneratingMixin, models.Model):
    """A model that already had its own image field and builds its prompt in code."""

    headline = models.CharField(max_length=200)
    mood = models.CharField(max_length=50, blank=True)
    artwork = models.ImageField(upload_to="posters", blank=True)

    image_field_name = "artwork"

    def __str__(self) -> str:
        return self.headline

    def get_image_prompt(self) -> str:
        return " ".join(part for part in (self.headline, self.mood) if part).strip()


class Note(models.Model):
    """Does not use the mixin: must never be addressable by the app."""

    text = models.TextField()

    def __str__(self) -> str:
        return self.text[:40]


class PublishedManager(models.Manager["Bulletin"]):
    def get_queryset(self) -> models.QuerySet[Bulletin]:
        return super().get_queryset().filter(published=True)


class Bulletin(ImageGeneratingMixin, models.Model):
    """A CMS-like model whose default manager hides unpublished rows from the public."""

    text = models.TextField()
    published = models.BooleanField(default=True)

    objects = PublishedManager()

    image_prompt_field = "text"

    def __str__(self) -> str:
        return self.text[:40]
