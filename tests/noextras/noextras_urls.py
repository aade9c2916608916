"""The URLconf of the no-extras check: the app's URLs, included as the README says."""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [path("page-images/", include("page_images.urls"))]
