"""Release claims whose jobs died, so their records can be generated again.

Run it from cron or Celery beat every few minutes; a click on a stale record retakes the claim
anyway, so this only matters for records nobody clicks again.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from page_images.claims import release_stale_claims


class Command(BaseCommand):
    help = "Release image-generation claims older than PAGE_IMAGES['CLAIM_TIMEOUT']."

    def handle(self, *args: Any, **options: Any) -> None:
        released = release_stale_claims()
        self.stdout.write(f"Released {released} stale image claim{'s' if released != 1 else ''}.")
