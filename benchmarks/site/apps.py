from __future__ import annotations

from django.apps import AppConfig


class BenchSiteConfig(AppConfig):
    name = "benchmarks.site"
    label = "bench"
    default_auto_field = "django.db.models.BigAutoField"
