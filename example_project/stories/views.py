from __future__ import annotations

from typing import TYPE_CHECKING

from django.shortcuts import render

from stories.models import Story

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse


def index(request: HttpRequest) -> HttpResponse:
    stories = Story.objects.prefetch_related("pages")
    return render(request, "stories/index.html", {"stories": stories})
