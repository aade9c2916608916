from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from page_images import services, signals
from page_images.exceptions import (
    EmptyPromptError,
    EnqueueError,
    StaleClaimError,
    StorageWriteError,
)
from page_images.testing import png_bytes
from tests.reliability import case
from tests.servers import unused_port
from tests.support.jobs import celery_app
from tests.testapp.models import Page

pytestmark = pytest.mark.django_db(transaction=True)


def test_claim_is_taken_once(page):
    token = services.claim(page)
    assert token is not None
    assert services.claim(Page.objects.get(pk=page.pk)) is None
    page.refresh_from_db()
    assert page.image_generating
    assert page.image_claim_token == token
    assert page.image_claimed_at is not None


def test_stale_claim_may_be_retaken(page, settings):
    first = services.claim(page)
    Page.objects.filter(pk=page.pk).update(image_claimed_at=timezone.now() - timedelta(hours=1))
    second = services.claim(Page.objects.get(pk=page.pk))
    assert second not in (None, first)


def test_flag_without_a_claim_time_is_treated_as_stale(page):
    # A host that set the seed's boolean by hand, with no claim time: never stuck forever.
    Page.objects.filter(pk=page.pk).update(image_generating=True)
    assert services.claim(Page.objects.get(pk=page.pk)) is not None


def test_release_needs_the_token(page):
    token = services.claim(page)
    assert not services.release_claim(Page, page.pk, uuid.uuid4(), error="no")
    assert services.release_claim(Page, page.pk, token, error="Refused")
    page.refresh_from_db()
    assert (page.image_generating, page.image_claim_token, page.image_error) == (
        False,
        None,
        "Refused",
    )


def test_touch_renews_only_a_held_claim(page):
    token = services.claim(page)
    Page.objects.filter(pk=page.pk).update(image_claimed_at=timezone.now() - timedelta(minutes=5))
    assert services.touch_claim(Page, page.pk, token)
    page.refresh_from_db()
    assert timezone.now() - page.image_claimed_at < timedelta(seconds=5)
    assert not services.touch_claim(Page, page.pk, uuid.uuid4())


def test_request_generation_claims_and_enqueues_one_job(page, published):
    started = []
    signals.generation_started.connect(
        lambda **kw: started.append(kw), weak=False, dispatch_uid="t"
    )
    try:
        token = services.request_generation(page, user="editor")
    finally:
        signals.generation_started.disconnect(dispatch_uid="t")
    assert token is not None
    assert [m["task"] for m in published] == ["page_images.generate"]
    assert started[0]["user"] == "editor"
    assert started[0]["token"] == token
    assert services.request_generation(Page.objects.get(pk=page.pk)) is None
    assert len(published) == 1


def test_replace_false_leaves_a_record_with_a_picture_alone(page, published):
    token = services.claim(page)
    services.set_image_and_notify(page, ContentFile(png_bytes(), name="a.png"), token=token)
    assert services.request_generation(page, replace=False) is None
    assert published == []
    assert services.request_generation(page) is not None  # the default regenerates
    assert len(published) == 1


def test_replace_false_still_claims_a_record_without_a_picture(page, published):
    assert services.request_generation(page, replace=False) is not None
    assert len(published) == 1


def test_request_generation_waits_for_the_commit(page, published):
    with transaction.atomic():
        services.request_generation(page)
        assert published == []
    assert len(published) == 1


def test_empty_prompt_is_refused_before_claiming(make_page, published):
    page = make_page("   ")
    with pytest.raises(EmptyPromptError, match="no text"):
        services.request_generation(page)
    page.refresh_from_db()
    assert not page.image_generating
    assert published == []


def test_broker_down_releases_the_claim_with_a_message(page):
    with celery_app(f"redis://127.0.0.1:{unused_port()}/0"):
        started = time.monotonic()
        with pytest.raises(EnqueueError, match="could not be queued"):
            services.request_generation(page)
        elapsed = time.monotonic() - started
    assert elapsed < 10, elapsed
    page.refresh_from_db()
    assert not page.image_generating
    assert "could not be queued" in page.image_error
    assert page.image_state == "error"


def test_broker_down_inside_a_transaction_lands_on_the_record(page):
    with celery_app(f"redis://127.0.0.1:{unused_port()}/0"), transaction.atomic():
        assert services.request_generation(page) is not None
    page.refresh_from_db()
    assert not page.image_generating
    assert "could not be queued" in page.image_error


def test_set_image_and_notify_stores_and_releases(page):
    token = services.claim(page)
    done = []
    signals.generation_succeeded.connect(lambda **kw: done.append(kw), weak=False, dispatch_uid="t")
    try:
        services.set_image_and_notify(page, ContentFile(png_bytes(), name="a.png"), token=token)
    finally:
        signals.generation_succeeded.disconnect(dispatch_uid="t")
    page.refresh_from_db()
    assert page.image.name.startswith("page_images/testapp/page/")
    assert page.image.storage.exists(page.image.name)
    assert (page.image_generating, page.image_claim_token, page.image_error) == (False, None, "")
    assert done[0]["instance"].pk == page.pk


def test_set_image_and_notify_keeps_other_fields_an_editor_changed(page):
    token = services.claim(page)
    Page.objects.filter(pk=page.pk).update(image_text="Edited meanwhile")
    services.set_image_and_notify(page, ContentFile(png_bytes(), name="a.png"), token=token)
    page.refresh_from_db()
    assert page.image_text == "Edited meanwhile"


@case(
    "concurrency",
    "A job stores its picture after its claim was retaken (service level)",
    "Refused (StaleClaimError); the newer state stays; its file is deleted.",
)
def test_a_stale_job_cannot_overwrite_and_leaves_no_file(page, settings):
    old = services.claim(page)
    Page.objects.filter(pk=page.pk).update(image_claimed_at=timezone.now() - timedelta(hours=1))
    new = services.claim(Page.objects.get(pk=page.pk))
    services.set_image_and_notify(
        Page.objects.get(pk=page.pk),
        ContentFile(png_bytes(color=(0, 0, 255)), name="new.png"),
        token=new,
    )
    with pytest.raises(StaleClaimError):
        services.set_image_and_notify(page, ContentFile(png_bytes(), name="old.png"), token=old)
    page.refresh_from_db()
    assert "new" in page.image.name
    stored = FileSystemStorage(settings.MEDIA_ROOT).listdir("page_images/testapp/page")[1]
    assert stored == [page.image.name.rsplit("/", 1)[1]]


def test_storage_failure_changes_nothing(page, monkeypatch):
    token = services.claim(page)

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(FileSystemStorage, "save", broken_save)
    with pytest.raises(StorageWriteError, match="disk full") as caught:
        services.set_image_and_notify(page, ContentFile(png_bytes(), name="a.png"), token=token)
    assert isinstance(caught.value.__cause__, OSError)
    page.refresh_from_db()
    assert page.image_generating
    assert page.image_claim_token == token
    assert not page.image


def test_fail_generation_sends_the_signal_once(page):
    token = services.claim(page)
    failed = []
    signals.generation_failed.connect(lambda **kw: failed.append(kw), weak=False, dispatch_uid="t")
    try:
        assert services.fail_generation(Page, page.pk, token, "Refused", ValueError("x"))
        assert not services.fail_generation(Page, page.pk, token, "Again")
    finally:
        signals.generation_failed.disconnect(dispatch_uid="t")
    assert [kw["message"] for kw in failed] == ["Refused"]


@case(
    "worker",
    "Claims older than CLAIM_TIMEOUT (dead workers)",
    "page_images_release_stale releases them with 'The image job did not finish in time. Try "
    "again.'",
)
def test_release_stale_claims(make_page, settings):
    fresh, stale, idle = make_page("one"), make_page("two"), make_page("three")
    services.claim(fresh)
    services.claim(stale)
    Page.objects.filter(pk=stale.pk).update(image_claimed_at=timezone.now() - timedelta(hours=1))
    assert services.release_stale_claims() == 1
    stale.refresh_from_db()
    fresh.refresh_from_db()
    idle.refresh_from_db()
    assert (stale.image_generating, stale.image_error) == (False, services.STALE_CLAIM_MESSAGE)
    assert fresh.image_generating
    assert not idle.image_generating


def with_picture(page):
    token = services.claim(page)
    services.set_image_and_notify(page, ContentFile(png_bytes(), name="a.png"), token=token)
    return page


def test_request_generations_claims_each_record_once_and_queues_its_job(make_page, published):
    fresh = [make_page(f"A lighthouse, number {n}") for n in range(5)]
    busy = make_page("Already being drawn")
    assert services.claim(busy) is not None
    pictured = with_picture(make_page("Already drawn"))
    empty = make_page("  ")
    records = [fresh[0], busy, *fresh[1:3], pictured, empty, *fresh[3:], fresh[0]]
    started = services.request_generations(records)
    assert [page.pk for page in started] == [page.pk for page in fresh]  # in order, once each
    assert len(published) == len(fresh)
    jobs = [message["body"][0][0] for message in published]  # (args, kwargs, embed)
    assert sorted(jobs, key=lambda job: int(job["pk"])) == [
        {"label": "testapp.Page", "pk": str(p.pk), "token": str(p.image_claim_token)} for p in fresh
    ]
    assert {m["headers"]["argsrepr"] for m in published} == {
        repr((p.image_reference,)) for p in fresh
    }
    for page in fresh:
        page.refresh_from_db()
        assert page.image_generating
    for page in (pictured, empty):
        page.refresh_from_db()
        assert not page.image_generating
    assert services.request_generations(fresh) == []  # all running: nothing queued twice
    assert len(published) == len(fresh)


def test_request_generations_replaces_pictures_only_when_asked(make_page, published):
    pictured = with_picture(make_page())
    assert services.request_generations([pictured]) == []
    assert services.request_generations([pictured], replace=True) == [pictured]
    assert len(published) == 1


def test_request_generations_claims_in_batches(make_page, published):
    pages = [make_page(f"Page {n}") for n in range(5)]
    with CaptureQueriesContext(connection) as queries:
        started = services.request_generations(pages, batch_size=3)
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 2  # one claim per batch, whatever the number of records
    assert len(started) == len(published) == 5
    with pytest.raises(ValueError, match="batch_size"):
        services.request_generations(pages, batch_size=0)


def test_request_generations_waits_for_the_commit(make_page, published):
    with transaction.atomic():
        services.request_generations([make_page(), make_page("Another text")])
        assert published == []
    assert len(published) == 2


def test_request_generations_with_the_broker_down_releases_every_record_at_once(make_page):
    pages = [make_page(f"Page {n}") for n in range(5)]
    with celery_app(f"redis://127.0.0.1:{unused_port()}/0"):
        started = time.monotonic()
        with pytest.raises(EnqueueError, match="could not be queued"):
            services.request_generations(pages)
        elapsed = time.monotonic() - started
    assert elapsed < 10, "one publish retry sequence, not one per record"
    for page in pages:
        page.refresh_from_db()
        assert page.image_state == "error"
        assert "could not be queued" in page.image_error


def test_request_generations_failing_part_way_keeps_the_jobs_already_sent(
    make_page, published, monkeypatch
):
    from page_images import tasks

    pages = [make_page(f"Page {n}") for n in range(4)]
    send = tasks.enqueue_generation

    def fail_third(instance, token, **kwargs):
        if len(published) == 2:
            raise ConnectionError("broker went away")
        send(instance, token, **kwargs)

    monkeypatch.setattr(tasks, "enqueue_generation", fail_third)
    with pytest.raises(EnqueueError):
        services.request_generations(pages)
    states = []
    for page in pages:
        page.refresh_from_db()
        states.append(page.image_state)
    assert states == ["generating", "generating", "error", "error"]
    assert len(published) == 2


def test_storing_into_a_field_that_is_not_a_file_field_is_a_type_error(page, monkeypatch):
    # What system check E010 reports at start-up; the store refuses it too, and writes nothing.
    monkeypatch.setattr(Page, "image_field_name", "image_text")
    with pytest.raises(TypeError, match=r"testapp\.Page\.image_text is not a FileField"):
        services.set_image_and_notify(page, ContentFile(png_bytes(), name="a.png"))


def broken_notifier(instance):
    """A NOTIFIER (named by its dotted path below) that is down."""
    raise RuntimeError("the notifier is down")


def test_a_failing_notifier_is_logged_never_raised(page, settings, caplog):
    settings.PAGE_IMAGES = {"NOTIFIER": "tests.test_services.broken_notifier"}
    with caplog.at_level(logging.ERROR, logger="page_images.services"):
        services.notify(page)
    assert f"PAGE_IMAGES['NOTIFIER'] failed for {page.image_reference}" in caplog.text
    assert "the notifier is down" in caplog.text
