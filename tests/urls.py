from __future__ import annotations

import importlib.util

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("page-images/", include("page_images.urls")),
]

if importlib.util.find_spec("ninja"):  # the [ninja] extra: the router, as a site mounts it
    from ninja import NinjaAPI

    api = NinjaAPI(urls_namespace="api", title="page images test API")
    api.add_router("/page-images/", "page_images.api.router")
    urlpatterns.append(path("api/", api.urls))
