"""The benchmark site's URLs, and django-eventstream's view where its README includes it."""

from __future__ import annotations

import django_eventstream
from django.urls import include, path

from benchmarks.site.urls import urlpatterns as site_urls

# No channel in the route: the view takes them from ``?channel=...`` (its default channel manager).
urlpatterns = [*site_urls, path("events/", include(django_eventstream.urls))]
