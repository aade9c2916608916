"""Seed the demo: a few stories, and the user demo / demo who may generate images."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from stories.models import Page, Story

STORIES = {
    "The Lighthouse Keeper's Cat": [
        "A ginger cat on the gallery of a red and white lighthouse at dusk, waves below",
        "The cat asleep on a stack of old logbooks beside a brass lamp",
        "A storm over the sea, the lighthouse beam cutting through the rain",
    ],
    "Market Day": [
        "A busy village market with striped awnings, baskets of apples and pears",
        "An old woman selling honey jars that glow in the morning sun",
        "A forbidden door at the back of the market "
        "(the demo refuses this one: edit the text and retry)",
    ],
}


class Command(BaseCommand):
    help = "Create the demo stories and the demo user (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        for title, texts in STORIES.items():
            story, _ = Story.objects.get_or_create(title=title)
            for number, text in enumerate(texts, start=1):
                Page.objects.get_or_create(
                    story=story, number=number, defaults={"image_text": text}
                )
        user_model = get_user_model()
        if not user_model.objects.filter(username="demo").exists():
            user_model.objects.create_superuser("demo", "demo@example.com", "demo")
        self.stdout.write("Seeded the demo stories; log in as demo / demo.")
