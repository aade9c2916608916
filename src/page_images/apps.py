"""App configuration: registers the system checks, with their tags."""

from __future__ import annotations

from django.apps import AppConfig
from django.core.checks import Tags, register
from django.utils.translation import gettext_lazy as _

#: The tag of every check of this app: ``manage.py check --tag page_images``.
CHECK_TAG = "page_images"


class PageImagesConfig(AppConfig):
    name = "page_images"
    verbose_name = _("Page images")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from page_images import checks, runners

        register(checks.check_settings, CHECK_TAG)
        register(checks.check_models, CHECK_TAG, Tags.models)
        register(checks.check_broker, CHECK_TAG)
        register(runners.check_runner, CHECK_TAG)
        register(checks.check_live_refresh, CHECK_TAG)
        register(checks.check_urls, CHECK_TAG, Tags.urls)
        register(checks.check_deployment, CHECK_TAG, Tags.security, deploy=True)
