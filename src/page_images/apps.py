"""App configuration: registers the system checks and the backend-cache reset."""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PageImagesConfig(AppConfig):
    name = "page_images"
    verbose_name = _("Page images")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported for their side effects: check registration and signal receivers.
        from page_images import backends, checks  # noqa: F401
