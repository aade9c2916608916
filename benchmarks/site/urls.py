from __future__ import annotations

from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from benchmarks.site import views

urlpatterns = [
    path("empty/", views.empty, name="empty"),
    path("login-only/", views.login_only, name="login-only"),
    path("hello/", csrf_exempt(views.hello), name="hello"),
    path("modules/", views.modules, name="modules"),
    path("debug/memory/", views.memory, name="memory"),
    path("debug/parts/", views.parts, name="parts"),
    path("page-images/", include("page_images.urls")),
]
