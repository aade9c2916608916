"""``path("page-images/", include("page_images.urls"))``."""

from __future__ import annotations

from django.urls import path

from page_images import views
from page_images.live.stream import event_stream, stream_token

app_name = "page_images"

urlpatterns = [
    path("generate/", views.trigger, name="trigger"),
    path("cancel/", views.cancel, name="cancel"),
    path("fragment/", views.fragment, name="fragment"),
    path("panel/", views.panel, name="panel"),
    path("accept/", views.accept, name="accept"),
    path("discard/", views.discard, name="discard"),
    path("restore/", views.restore, name="restore"),
    path("events/", event_stream, name="events"),
    path("events/token/", stream_token, name="stream_token"),
]
