"""The claim's state changes: claim, run, requeue, release, fail, store, cancel, sweep."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.db import DatabaseError
from django.db.models import QuerySet
from django.utils import timezone

from page_images import claims, signals
from page_images.exceptions import (
    StaleClaimError,
    StorageWriteError,
)
from page_images.models import STALE_CLAIM_MESSAGE
from page_images.testing import png_bytes
from tests.reliability import case
from tests.testapp.models import Page

pytestmark = pytest.mark.django_db(transaction=True)


def test_claim_is_taken_once(page):
    token = claims.claim(page)
    assert token is not None
    assert claims.claim(Page.objects.get(pk=page.pk)) is None
    page.refresh_from_db()
    assert page.image_generating
    assert page.image_claim_token == token
    assert page.image_claimed_at is not None


def test_stale_claim_may_be_retaken(page, settings):
    first = claims.claim(page)
    Page.objects.filter(pk=page.pk).update(image_started_at=timezone.now() - timedelta(hours=1))
    second = claims.claim(Page.objects.get(pk=page.pk))
    assert second not in (None, first)


@case(
    "worker",
    "A job waits in the queue longer than CLAIM_TIMEOUT (a backfill, workers down for a while)",
    "Still generating: queue time is not running time; presumed lost only after QUEUE_TIMEOUT.",
)
def test_queued_time_is_not_counted_as_a_dead_jobs_time(page, settings):
    settings.PAGE_IMAGES = {"CLAIM_TIMEOUT": 60, "QUEUE_TIMEOUT": 3600}
    token = claims.claim(page)
    Page.objects.filter(pk=page.pk).update(image_claimed_at=timezone.now() - timedelta(minutes=30))
    queued = Page.objects.get(pk=page.pk)
    assert (queued.image_state, queued.image_job_lost) == ("generating", False)
    assert claims.claim(queued) is None
    assert claims.release_stale_claims() == 0
    assert claims.touch_claim(Page, page.pk, token)  # the job finally starts: its own clock runs
    Page.objects.filter(pk=page.pk).update(image_started_at=timezone.now() - timedelta(minutes=2))
    assert Page.objects.get(pk=page.pk).image_state == "error"
    assert claims.release_stale_claims() == 1


def test_a_queued_job_is_presumed_lost_after_queue_timeout(page, settings):
    settings.PAGE_IMAGES = {"QUEUE_TIMEOUT": 3600}
    claims.claim(page)
    Page.objects.filter(pk=page.pk).update(image_claimed_at=timezone.now() - timedelta(hours=2))
    lost = Page.objects.get(pk=page.pk)
    assert (lost.image_state, lost.image_error_message) == ("error", STALE_CLAIM_MESSAGE)
    assert claims.claim(lost) is not None


def test_flag_without_a_claim_time_is_treated_as_stale(page):
    # A host that set the seed's boolean by hand, with no claim time: never stuck forever.
    Page.objects.filter(pk=page.pk).update(image_generating=True)
    assert claims.claim(Page.objects.get(pk=page.pk)) is not None


def test_release_needs_the_token(page):
    token = claims.claim(page)
    assert not claims.release_claim(Page, page.pk, uuid.uuid4(), error="no")
    assert claims.release_claim(Page, page.pk, token, error="Refused")
    page.refresh_from_db()
    assert (page.image_generating, page.image_claim_token, page.image_error) == (
        False,
        None,
        "Refused",
    )


def test_touch_renews_only_a_held_claim(page):
    token = claims.claim(page)
    Page.objects.filter(pk=page.pk).update(image_started_at=timezone.now() - timedelta(minutes=5))
    assert claims.touch_claim(Page, page.pk, token)
    page.refresh_from_db()
    assert timezone.now() - page.image_started_at < timedelta(seconds=5)
    assert claims.requeue_claim(Page, page.pk, token)
    page.refresh_from_db()
    assert page.image_started_at is None  # waiting for its retry: queue time again
    assert not claims.touch_claim(Page, page.pk, uuid.uuid4())


def test_set_image_and_notify_stores_and_releases(page):
    token = claims.claim(page)
    done = []
    signals.generation_succeeded.connect(lambda **kw: done.append(kw), weak=False, dispatch_uid="t")
    try:
        claims.set_image_and_notify(page, ContentFile(png_bytes(), name="a.png"), token=token)
    finally:
        signals.generation_succeeded.disconnect(dispatch_uid="t")
    page.refresh_from_db()
    assert page.image.name.startswith("page_images/testapp/page/")
    assert page.image.storage.exists(page.image.name)
    assert (page.image_generating, page.image_claim_token, page.image_error) == (False, None, "")
    assert done[0]["instance"].pk == page.pk


def test_set_image_and_notify_keeps_other_fields_an_editor_changed(page):
    token = claims.claim(page)
    Page.objects.filter(pk=page.pk).update(image_text="Edited meanwhile")
    claims.set_image_and_notify(page, ContentFile(png_bytes(), name="a.png"), token=token)
    page.refresh_from_db()
    assert page.image_text == "Edited meanwhile"


@case(
    "concurrency",
    "A job stores its picture after its claim was retaken (service level)",
    "Refused (StaleClaimError); the newer state stays; its file is deleted.",
)
def test_a_stale_job_cannot_overwrite_and_leaves_no_file(page, settings):
    old = claims.claim(page)
    Page.objects.filter(pk=page.pk).update(image_started_at=timezone.now() - timedelta(hours=1))
    new = claims.claim(Page.objects.get(pk=page.pk))
    claims.set_image_and_notify(
        Page.objects.get(pk=page.pk),
        ContentFile(png_bytes(color=(0, 0, 255)), name="new.png"),
        token=new,
    )
    with pytest.raises(StaleClaimError):
        claims.set_image_and_notify(page, ContentFile(png_bytes(), name="old.png"), token=old)
    page.refresh_from_db()
    assert "new" in page.image.name
    stored = FileSystemStorage(settings.MEDIA_ROOT).listdir("page_images/testapp/page")[1]
    assert stored == [page.image.name.rsplit("/", 1)[1]]


def test_storage_failure_changes_nothing(page, monkeypatch):
    token = claims.claim(page)

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(FileSystemStorage, "save", broken_save)
    with pytest.raises(StorageWriteError, match="disk full") as caught:
        claims.set_image_and_notify(page, ContentFile(png_bytes(), name="a.png"), token=token)
    assert isinstance(caught.value.__cause__, OSError)
    page.refresh_from_db()
    assert page.image_generating
    assert page.image_claim_token == token
    assert not page.image


def test_fail_generation_sends_the_signal_once(page):
    token = claims.claim(page)
    failed = []
    signals.generation_failed.connect(lambda **kw: failed.append(kw), weak=False, dispatch_uid="t")
    try:
        assert claims.fail_generation(Page, page.pk, token, "Refused", ValueError("x"))
        assert not claims.fail_generation(Page, page.pk, token, "Again")
    finally:
        signals.generation_failed.disconnect(dispatch_uid="t")
    assert [kw["message"] for kw in failed] == ["Refused"]


@case(
    "worker",
    "Claims whose job is presumed dead (dead workers, lost queues)",
    "page_images_release_stale releases them with 'The image job did not finish in time. Try "
    "again.'",
)
def test_release_stale_claims(make_page, settings):
    fresh, stale, idle = make_page("one"), make_page("two"), make_page("three")
    claims.claim(fresh)
    claims.claim(stale)
    Page.objects.filter(pk=stale.pk).update(image_started_at=timezone.now() - timedelta(hours=1))
    assert claims.release_stale_claims() == 1
    stale.refresh_from_db()
    fresh.refresh_from_db()
    idle.refresh_from_db()
    assert (stale.image_generating, stale.image_error) == (False, claims.STALE_CLAIM_MESSAGE)
    assert fresh.image_generating
    assert not idle.image_generating


def test_storing_into_a_field_that_is_not_a_file_field_is_a_type_error(page, monkeypatch):
    # What system check E010 reports at start-up; the store refuses it too, and writes nothing.
    monkeypatch.setattr(Page, "image_field_name", "image_text")
    with pytest.raises(TypeError, match=r"testapp\.Page\.image_text is not a FileField"):
        claims.set_image_and_notify(page, ContentFile(png_bytes(), name="a.png"))


def broken_notifier(instance):
    """A NOTIFIER (named by its dotted path below) that is down."""
    raise RuntimeError("the notifier is down")


def test_a_failing_notifier_is_logged_never_raised(page, settings, caplog):
    settings.PAGE_IMAGES = {"NOTIFIER": "tests.test_claims.broken_notifier"}
    with caplog.at_level(logging.ERROR, logger="page_images.claims"):
        claims.notify(page)
    assert f"PAGE_IMAGES['NOTIFIER'] failed for {page.image_reference}" in caplog.text
    assert "the notifier is down" in caplog.text


# --- What a store or a failure meets halfway (branch `coverage`) ---------------------------------

NOTIFIED: list[str] = []


def recording_notifier(instance):
    """A NOTIFIER (named by its dotted path below) that notes what it was told."""
    NOTIFIED.append(instance.image_reference)


@pytest.fixture
def notified(settings):
    settings.PAGE_IMAGES = {"NOTIFIER": "tests.test_claims.recording_notifier"}
    NOTIFIED.clear()
    return NOTIFIED


def test_cancel_without_a_job_changes_and_announces_nothing(page, notified):
    # A second editor's cancel after the first one's: the record's error, if any, stays for the
    # editor to read, and no page is told to re-read a record that did not change.
    Page.objects.filter(pk=page.pk).update(image_error="Refused by the provider")
    assert not claims.cancel(Page.objects.get(pk=page.pk))
    page.refresh_from_db()
    assert page.image_error == "Refused by the provider"
    assert notified == []


def test_a_job_does_not_overwrite_a_picture_an_editor_replaced_meanwhile(page, settings):
    # The record had a picture when the job read it; an editor uploaded another one while the
    # provider worked. The editor's picture wins, and the job's file is removed again.
    claims.set_image_and_notify(page, ContentFile(png_bytes(), name="first.png"))
    token = claims.claim(page)
    job_view = Page.objects.get(pk=page.pk)
    Page.objects.filter(pk=page.pk).update(image="page_images/editors-own.png")
    with pytest.raises(StaleClaimError):
        claims.set_image_and_notify(job_view, ContentFile(png_bytes(), name="job.png"), token=token)
    page.refresh_from_db()
    assert page.image.name == "page_images/editors-own.png"
    assert not page.image_generating  # the claim was given back
    stored = FileSystemStorage(settings.MEDIA_ROOT).listdir("page_images/testapp/page")[1]
    assert [name for name in stored if name.startswith("job")] == []


def test_a_picture_replacing_an_unchanged_one_is_stored(page):
    claims.set_image_and_notify(page, ContentFile(png_bytes(), name="first.png"))
    token = claims.claim(page)
    job_view = Page.objects.get(pk=page.pk)
    claims.set_image_and_notify(job_view, ContentFile(png_bytes(), name="second.png"), token=token)
    page.refresh_from_db()
    assert page.image.name.rsplit("/", 1)[1].startswith("second")


def test_a_failed_row_update_removes_the_stored_file(page, settings, monkeypatch):
    token = claims.claim(page)

    def database_down(queryset, **values):
        raise DatabaseError("server closed the connection unexpectedly")

    monkeypatch.setattr(QuerySet, "update", database_down)
    with pytest.raises(DatabaseError):
        claims.set_image_and_notify(page, ContentFile(png_bytes(), name="a.png"), token=token)
    monkeypatch.undo()
    assert FileSystemStorage(settings.MEDIA_ROOT).listdir("page_images/testapp/page")[1] == []
    page.refresh_from_db()
    assert (page.image_generating, page.image_claim_token) == (True, token)


def test_a_storage_that_cannot_clean_up_still_raises_the_write_error(page, monkeypatch, caplog):
    token = claims.claim(page)

    def unreachable(*args, **kwargs):
        raise OSError("the network share is gone")

    monkeypatch.setattr(FileSystemStorage, "save", unreachable)
    monkeypatch.setattr(FileSystemStorage, "exists", unreachable)
    with (
        caplog.at_level(logging.ERROR, logger="page_images.claims"),
        pytest.raises(StorageWriteError, match="the network share is gone"),
    ):
        claims.set_image_and_notify(page, ContentFile(png_bytes(), name="a.png"), token=token)
    assert "Could not remove the partly written picture" in caplog.text
    page.refresh_from_db()
    assert page.image_claim_token == token


def test_a_failure_for_a_record_a_receiver_deleted_is_recorded_and_not_announced(page, notified):
    # A host's generation_failed receiver may clean up, down to deleting the record: the failure
    # still counts, and nothing is announced for a record that is gone.
    token = claims.claim(page)

    def delete_the_record(pk, **kwargs):
        Page.objects.filter(pk=pk).delete()

    signals.generation_failed.connect(delete_the_record, weak=False, dispatch_uid="t")
    try:
        assert claims.fail_generation(Page, page.pk, token, "Refused")
    finally:
        signals.generation_failed.disconnect(dispatch_uid="t")
    assert not Page.objects.filter(pk=page.pk).exists()
    assert notified == []


# --- The history rows the claim's changes close -----------------------------------------------


def history_row(page, token):
    from page_images.history import Generation, content_type_of

    return Generation.objects.create(
        content_type=content_type_of(page), object_id=str(page.pk), token=token, prompt="x"
    )


def test_cancel_closes_the_generation_as_cancelled(page):
    row = history_row(page, claims.claim(page))
    assert claims.cancel(page)
    row.refresh_from_db()
    assert (row.status, row.error, row.finished_at is not None) == ("cancelled", "", True)


def test_fail_generation_records_the_failure_in_the_history(page):
    token = claims.claim(page)
    row = history_row(page, token)
    assert claims.fail_generation(Page, page.pk, token, "Refused by the content policy.")
    row.refresh_from_db()
    assert (row.status, row.error) == ("failed", "Refused by the content policy.")


def test_release_stale_claims_closes_the_dead_jobs_generations(make_page):
    stale, fresh = make_page("one"), make_page("two")
    dead = history_row(stale, claims.claim(stale))
    alive = history_row(fresh, claims.claim(fresh))
    Page.objects.filter(pk=stale.pk).update(image_started_at=timezone.now() - timedelta(hours=1))
    assert claims.release_stale_claims() == 1
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert (dead.status, dead.error) == ("failed", "The image job did not finish in time.")
    assert alive.status == "queued"


def test_a_claim_clears_a_waiting_review(page):
    Page.objects.filter(pk=page.pk).update(image_review=True)
    page.refresh_from_db()
    assert page.image_state == "review"
    claims.claim(page)
    page.refresh_from_db()
    assert (page.image_review, page.image_state) == (False, "generating")
