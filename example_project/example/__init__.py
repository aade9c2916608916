"""The example site. Importing the Celery app here makes shared_task use it (Celery's guide)."""

from __future__ import annotations

from example.celery import app as celery_app

__all__ = ["celery_app"]
