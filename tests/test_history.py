"""The history tables: every generation and the files it made, one table for every model."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.files.storage import FileSystemStorage
from django.test.utils import isolate_apps
from django.utils import timezone

from page_images import history
from page_images.history import (
    ABANDONED_MESSAGE,
    Generation,
    Picture,
    close_open,
    content_type_of,
    record_outcome,
    record_start,
)
from tests.testapp.models import Page, Poster

pytestmark = pytest.mark.django_db

Status = Generation.Status


def generation(record, token=None, **fields):
    return Generation.objects.create(
        content_type=content_type_of(record),
        object_id=str(record.pk),
        token=token or uuid.uuid4(),
        prompt="A red fox",
        **fields,
    )


def status_of(row):
    row.refresh_from_db()
    return row.status


def test_record_start_runs_the_jobs_row_and_closes_the_ones_it_took_over(page, make_page):
    token = uuid.uuid4()
    mine = generation(page, token)
    taken_over = generation(page, status=Status.RUNNING)  # a claim presumed dead, retaken
    reviewed = generation(page, status=Status.REVIEW)
    other_page = generation(make_page())

    started = record_start(Page, page.pk, token)

    assert started == mine
    assert (started.status, started.started_at is not None) == (Status.RUNNING, True)
    taken_over.refresh_from_db()
    assert (taken_over.status, taken_over.error) == (Status.FAILED, ABANDONED_MESSAGE)
    assert taken_over.finished_at is not None
    assert status_of(reviewed) == Status.REVIEW  # not open: its candidates wait for an editor
    assert status_of(other_page) == Status.QUEUED


def test_record_start_of_a_retry_restarts_the_clock(page):
    token = uuid.uuid4()
    row = generation(page, token, status=Status.RUNNING)
    Generation.objects.filter(pk=row.pk).update(started_at=timezone.now() - timedelta(minutes=1))
    started = record_start(Page, page.pk, token)
    assert timezone.now() - started.started_at < timedelta(seconds=10)


def test_a_job_without_a_history_row_starts_with_none(page):
    assert record_start(Page, page.pk, uuid.uuid4()) is None


def test_record_outcome_writes_an_open_row_only(page):
    token = uuid.uuid4()
    row = generation(page, token, status=Status.RUNNING)
    assert record_outcome(Page, page.pk, token, Status.DONE, model="local") == 1
    row.refresh_from_db()
    assert (row.status, row.model, row.finished_at is not None) == (Status.DONE, "local", True)
    assert record_outcome(Page, page.pk, uuid.uuid4(), Status.DONE) == 0


def test_a_cancelled_generation_stays_cancelled_whatever_its_job_finds(page):
    token = uuid.uuid4()
    row = generation(page, token)
    assert close_open(page, Status.CANCELLED) == 1
    assert record_outcome(Page, page.pk, token, Status.FAILED, error="boom") == 0
    row.refresh_from_db()
    assert (row.status, row.error) == (Status.CANCELLED, "")


def test_close_open_closes_queued_and_running_only(page):
    queued, running = generation(page), generation(page, status=Status.RUNNING)
    done = generation(page, status=Status.DONE)
    assert close_open(page, Status.FAILED, error=ABANDONED_MESSAGE) == 2
    assert [status_of(row) for row in (queued, running, done)] == [
        Status.FAILED,
        Status.FAILED,
        Status.DONE,
    ]
    queued.refresh_from_db()
    assert queued.error == ABANDONED_MESSAGE


def test_duration_is_from_the_last_start_to_the_outcome(page):
    row = generation(page)
    assert row.duration is None
    row.started_at = timezone.now()
    assert row.duration is None
    row.finished_at = row.started_at + timedelta(seconds=12)
    assert row.duration == timedelta(seconds=12)


def test_str(page):
    row = generation(page, status=Status.DONE)
    day = f"{row.created_at:%Y-%m-%d}"
    assert str(row) == f"{row.content_type_id}:{page.pk} done {day}"
    picture = Picture(name="page_images/a.png")
    assert str(picture) == "page_images/a.png"
    assert picture.url(FileSystemStorage(base_url="/media/")) == "/media/page_images/a.png"


def test_of_finds_the_rows_of_one_record_of_one_model(page, poster):
    assert page.pk == poster.pk  # the same key in two models: told apart by the content type
    mine, theirs = generation(page), generation(poster)
    assert list(Generation.objects.of(page)) == [mine]
    assert list(Generation.objects.of(poster)) == [theirs]
    assert mine.record == page


def test_the_newest_generation_comes_first(page):
    first, second = generation(page), generation(page)
    assert list(Generation.objects.of(page)) == [second, first]


@isolate_apps("tests.testapp")
def test_a_proxy_models_records_have_their_own_content_type(page):
    class PageProxy(Page):
        class Meta:
            proxy = True
            app_label = "testapp"

    proxied = PageProxy.objects.get(pk=page.pk)
    proxy_type = content_type_of(proxied)
    assert proxy_type == ContentType.objects.get_for_model(PageProxy, for_concrete_model=False)
    assert proxy_type != content_type_of(page)
    row = generation(proxied)
    assert list(Generation.objects.of(proxied)) == [row]
    assert list(Generation.objects.of(page)) == []
    assert history.generations_of_job(PageProxy, page.pk, row.token).get() == row


def test_deleting_a_generation_keeps_its_pictures(page):
    row = generation(page)
    picture = Picture.objects.create(
        content_type=content_type_of(page),
        object_id=str(page.pk),
        generation=row,
        name="a.png",
        status=Picture.Status.KEPT,
    )
    assert list(row.pictures.all()) == [picture]
    row.delete()
    picture.refresh_from_db()
    assert picture.generation is None


def test_a_poster_record_is_reached_by_its_key(poster):
    assert generation(poster).record == Poster.objects.get(pk=poster.pk)
