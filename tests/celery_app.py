"""The Celery app of the test project, as a host project would write it (Celery's Django guide)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

app = Celery("page_images_tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["page_images"])
