"""Issue 11's view cases; folded into test_views.py once the tiers branch is merged."""

from __future__ import annotations

import socket

import pytest
from django.test import Client

from page_images.references import sign_record

pytestmark = pytest.mark.django_db(transaction=True)

HTMX = {"HTTP_HX_REQUEST": "true"}
TRIGGER = "/page-images/generate/"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def click(user, page):
    client = Client()
    client.force_login(user)
    return client.post(TRIGGER, {"ref": sign_record(page), "next": "/"}, **HTMX)


def test_the_broker_failure_is_said_once(editor, page, settings):
    from tests.conftest import celery_app

    with celery_app(f"redis://127.0.0.1:{closed_port()}/0"):
        response = click(editor, page)
    assert response.status_code == 503
    assert response.content.decode().count("could not be queued") == 1


def test_a_cache_outage_answers_503_with_the_containers_message(editor, page, settings, published):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_port()}/0",
        }
    }
    response = click(editor, page)
    assert response.status_code == 503
    html = response.content.decode()
    assert "cache is unreachable" in html
    assert 'class="page-images' in html  # the container, which the script swaps in
    assert published == []
    page.refresh_from_db()
    assert page.image_state == "empty"


def fragment(user, page):
    client = Client()
    if user is not None:
        client.force_login(user)
    return client.get("/page-images/fragment/", {"ref": sign_record(page)}, **HTMX)


def test_a_job_presumed_dead_shows_try_again_with_no_command_run(editor, page, settings):
    from datetime import timedelta

    from django.utils import timezone

    from page_images import claims

    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "CLAIM_TIMEOUT": 60}
    token = claims.claim(page)
    claims.touch_claim(type(page), page.pk, token)
    html = fragment(editor, page).content.decode()
    assert 'data-state="generating"' in html
    assert "load delay:61s" in html or "load delay:62s" in html  # the page re-reads by itself
    type(page).objects.filter(pk=page.pk).update(
        image_started_at=timezone.now() - timedelta(seconds=61)
    )
    html = fragment(editor, page).content.decode()
    assert 'data-state="error"' in html
    assert "did not finish in time" in html
    assert "Try again" in html
    assert click(editor, page).status_code == 200  # the click retakes the dead job's claim
    page.refresh_from_db()
    assert page.image_claim_token not in (None, token)


def test_an_editor_can_cancel_a_queued_job(editor, page, published):
    click(editor, page)
    assert len(published) == 1
    html = fragment(editor, page).content.decode()
    assert "Cancel" in html
    client = Client()
    client.force_login(editor)
    response = client.post("/page-images/cancel/", {"ref": sign_record(page)}, **HTMX)
    assert response.status_code == 200
    assert 'data-state="empty"' in response.content.decode()
    page.refresh_from_db()
    assert (page.image_generating, page.image_claim_token, page.image_error) == (False, None, "")


def test_cancel_needs_the_same_permission_as_the_click(reader, page):
    from page_images import claims

    claims.claim(page)
    client = Client()
    client.force_login(reader)
    response = client.post("/page-images/cancel/", {"ref": sign_record(page)}, **HTMX)
    assert response.status_code == 403
    page.refresh_from_db()
    assert page.image_generating


def test_a_cancelled_job_discards_its_picture(page, settings):
    from page_images import claims, tasks

    settings.PAGE_IMAGES = {"BACKEND": "tests.backends.ScriptedBackend", "SIZE": "32x32"}
    token = claims.claim(page)
    assert claims.cancel(type(page).objects.get(pk=page.pk))
    job = tasks.ImageJob(label=page._meta.label, pk=str(page.pk), token=token)
    tasks.generate_image.apply(args=(job.model_dump(mode="json"),))
    page.refresh_from_db()
    assert (page.image_state, page.image.name) == ("empty", "")


def test_an_editors_upload_during_a_job_is_kept(page, settings):
    # The admin's save() writes back the whole row, claim token included: the job must still not
    # overwrite the picture an editor chose while it worked.
    from django.core.files.base import ContentFile

    from page_images import claims
    from page_images.exceptions import StaleClaimError
    from page_images.testing import png_bytes

    token = claims.claim(page)
    as_the_job_read_it = type(page).objects.get(pk=page.pk)
    edited = type(page).objects.get(pk=page.pk)
    edited.image.save("mine.png", ContentFile(png_bytes(8, 8)), save=True)  # a full save()
    made = ContentFile(png_bytes(32, 32), name="made.png")
    with pytest.raises(StaleClaimError):
        claims.set_image_and_notify(as_the_job_read_it, made, token=token)
    page.refresh_from_db()
    assert page.image.name.endswith("mine.png")
    assert (page.image_state, page.image_generating) == ("ready", False)
