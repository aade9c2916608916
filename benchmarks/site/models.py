from __future__ import annotations

from django.db import models

from page_images.models import ImageGeneratingMixin


class Article(ImageGeneratingMixin, models.Model):
    """A record with a picture made from its ``text``. No migrations: ``migrate --run-syncdb``."""

    title = models.CharField(max_length=200)
    text = models.TextField()

    image_prompt_field = "text"

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.title
