from __future__ import annotations

import importlib.util

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path

from stories import views

urlpatterns = [
    path("", views.index, name="index"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("page-images/", include("page_images.urls")),
    *static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT),
]

if importlib.util.find_spec("ninja"):  # the [ninja] extra: the router as a ninja site mounts it
    from ninja import NinjaAPI

    api = NinjaAPI(urls_namespace="api", title="Stories API")
    api.add_router("/page-images/", "page_images.api.router")
    urlpatterns.append(path("api/", api.urls))
