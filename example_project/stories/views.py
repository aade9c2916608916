from __future__ import annotations

from typing import TYPE_CHECKING

from django.apps import apps
from django.shortcuts import render

from stories.models import Story

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse


def index(request: HttpRequest) -> HttpResponse:
    stories = Story.objects.prefetch_related("pages")
    # The same page drawn with django-cotton's components, where the demo runs with them.
    cotton = apps.is_installed("django_cotton")
    template = "stories/index_cotton.html" if cotton else "stories/index.html"
    return render(request, template, {"stories": stories})
