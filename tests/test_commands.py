from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from page_images import claims
from tests.testapp.models import Page


@pytest.mark.django_db(transaction=True)
def test_release_stale_reports_what_it_released(page):
    claims.claim(page)
    Page.objects.filter(pk=page.pk).update(image_started_at=timezone.now() - timedelta(days=1))
    out = StringIO()
    call_command("page_images_release_stale", stdout=out)
    assert out.getvalue().strip() == "Released 1 stale image claim."
    page.refresh_from_db()
    assert page.image_state == "error"
