"""Queueing: one job per claim, sent after commit; a broker failure lands on the record."""

from __future__ import annotations

import time

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext

from page_images import claims, pictures, queueing, signals
from page_images.exceptions import EmptyPromptError, EnqueueError, InvalidChoiceError
from page_images.history import Generation
from page_images.testing import png_bytes
from tests.reliability import case
from tests.servers import unused_port
from tests.support.jobs import celery_app, with_picture
from tests.support.pictures import in_review
from tests.testapp.models import Page

pytestmark = pytest.mark.django_db(transaction=True)


def test_request_generation_claims_and_enqueues_one_job(page, published):
    started = []
    signals.generation_started.connect(
        lambda **kw: started.append(kw), weak=False, dispatch_uid="t"
    )
    try:
        token = queueing.request_generation(page, user="editor")
    finally:
        signals.generation_started.disconnect(dispatch_uid="t")
    assert token is not None
    assert [m["task"] for m in published] == ["page_images.generate"]
    assert started[0]["user"] == "editor"
    assert started[0]["token"] == token
    assert queueing.request_generation(Page.objects.get(pk=page.pk)) is None
    assert len(published) == 1


def test_replace_false_leaves_a_record_with_a_picture_alone(page, published):
    token = claims.claim(page)
    claims.set_image_and_notify(page, ContentFile(png_bytes(), name="a.png"), token=token)
    assert queueing.request_generation(page, replace=False) is None
    assert published == []
    assert queueing.request_generation(page) is not None  # the default regenerates
    assert len(published) == 1


def test_replace_false_still_claims_a_record_without_a_picture(page, published):
    assert queueing.request_generation(page, replace=False) is not None
    assert len(published) == 1


def test_request_generation_waits_for_the_commit(page, published):
    with transaction.atomic():
        queueing.request_generation(page)
        assert published == []
    assert len(published) == 1


def test_empty_prompt_is_refused_before_claiming(make_page, published):
    page = make_page("   ")
    with pytest.raises(EmptyPromptError, match="no text"):
        queueing.request_generation(page)
    page.refresh_from_db()
    assert not page.image_generating
    assert published == []


def test_broker_down_releases_the_claim_with_a_message(page):
    with celery_app(f"redis://127.0.0.1:{unused_port()}/0"):
        started = time.monotonic()
        with pytest.raises(EnqueueError, match="could not be queued"):
            queueing.request_generation(page)
        elapsed = time.monotonic() - started
    assert elapsed < 10, elapsed
    page.refresh_from_db()
    assert not page.image_generating
    assert "could not be queued" in page.image_error
    assert page.image_state == "error"


def test_broker_down_inside_a_transaction_lands_on_the_record(page):
    with celery_app(f"redis://127.0.0.1:{unused_port()}/0"), transaction.atomic():
        assert queueing.request_generation(page) is not None
    page.refresh_from_db()
    assert not page.image_generating
    assert "could not be queued" in page.image_error


def test_request_generations_claims_each_record_once_and_queues_its_job(make_page, published):
    fresh = [make_page(f"A lighthouse, number {n}") for n in range(5)]
    busy = make_page("Already being drawn")
    assert claims.claim(busy) is not None
    pictured = with_picture(make_page("Already drawn"))
    empty = make_page("  ")
    records = [fresh[0], busy, *fresh[1:3], pictured, empty, *fresh[3:], fresh[0]]
    started = queueing.request_generations(records)
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
    assert queueing.request_generations(fresh) == []  # all running: nothing queued twice
    assert len(published) == len(fresh)


def test_request_generations_replaces_pictures_only_when_asked(make_page, published):
    pictured = with_picture(make_page())
    assert queueing.request_generations([pictured]) == []
    assert queueing.request_generations([pictured], replace=True) == [pictured]
    assert len(published) == 1


def test_request_generations_claims_in_batches(make_page, published):
    pages = [make_page(f"Page {n}") for n in range(5)]
    with CaptureQueriesContext(connection) as queries:
        started = queueing.request_generations(pages, batch_size=3)
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 2  # one claim per batch, whatever the number of records
    assert len(started) == len(published) == 5
    with pytest.raises(ValueError, match="batch_size"):
        queueing.request_generations(pages, batch_size=0)


def test_request_generations_waits_for_the_commit(make_page, published):
    with transaction.atomic():
        queueing.request_generations([make_page(), make_page("Another text")])
        assert published == []
    assert len(published) == 2


def test_request_generations_with_the_broker_down_releases_every_record_at_once(make_page):
    pages = [make_page(f"Page {n}") for n in range(5)]
    with celery_app(f"redis://127.0.0.1:{unused_port()}/0"):
        started = time.monotonic()
        with pytest.raises(EnqueueError, match="could not be queued"):
            queueing.request_generations(pages)
        elapsed = time.monotonic() - started
    assert elapsed < 10, "one publish retry sequence, not one per record"
    for page in pages:
        page.refresh_from_db()
        assert page.image_state == "error"
        assert "could not be queued" in page.image_error


def test_request_generations_failing_part_way_keeps_the_jobs_already_sent(
    make_page, published, monkeypatch
):
    from page_images import queueing

    pages = [make_page(f"Page {n}") for n in range(4)]
    send = queueing.enqueue_generation

    def fail_third(instance, token, **kwargs):
        if len(published) == 2:
            raise ConnectionError("broker went away")
        send(instance, token, **kwargs)

    monkeypatch.setattr(queueing, "enqueue_generation", fail_third)
    with pytest.raises(EnqueueError):
        queueing.request_generations(pages)
    states = []
    for page in pages:
        page.refresh_from_db()
        states.append(page.image_state)
    assert states == ["generating", "generating", "error", "error"]
    assert len(published) == 2


# The history row of a click, and the editor's choices.


def generations(page):
    return list(Generation.objects.of(page))


def test_a_click_writes_its_history_row_with_the_claim(page, editor, published, configure):
    configure(PRESETS={"ink": {"prompt": "In ink.", "quality": "low"}}, VARIANTS=2)
    token = queueing.request_generation(page, user=editor, prompt="A grey wolf")
    (row,) = generations(page)
    assert (row.token, row.user, row.status) == (token, editor, "queued")
    assert (row.prompt, row.subject, row.prompt_edited) == (
        "A grey wolf\n\nIn ink.",
        "A grey wolf",
        True,
    )
    assert (row.preset, row.size, row.quality, row.variants, row.review) == (
        "ink",
        "256x256",
        "low",
        2,
        True,
    )
    assert (row.backend, row.model) == ("page_images.backends.local.LocalBackend", "")


def test_an_anonymous_or_code_click_is_recorded_without_a_user(page, published, settings):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "OPTIONS": {"model": "local-1"}}
    queueing.request_generation(page, user="a script")
    (row,) = generations(page)
    assert (row.user, row.model) == (None, "local-1")


@case(
    "storage",
    "The history row cannot be written at the click (a database error)",
    "The click fails and nothing is claimed: never a claim without its row, nor a job.",
)
def test_the_claim_and_its_history_row_are_one_transaction(page, published, monkeypatch):
    def broken(self, *args, **kwargs):
        raise DatabaseError("disk I/O error")

    monkeypatch.setattr(Generation, "save", broken)
    with pytest.raises(DatabaseError):
        queueing.request_generation(page)
    page.refresh_from_db()
    assert (page.image_generating, page.image_claim_token) == (False, None)
    assert published == []


def test_a_click_that_claims_nothing_writes_no_row(page, published):
    assert queueing.request_generation(page) is not None
    assert queueing.request_generation(Page.objects.get(pk=page.pk)) is None
    assert len(generations(page)) == 1


def test_an_invalid_choice_claims_nothing(page, published):
    with pytest.raises(InvalidChoiceError):
        queueing.request_generation(page, preset="oil")
    page.refresh_from_db()
    assert not page.image_generating
    assert generations(page) == []


def test_a_new_click_drops_the_review_waiting(page, published):
    made = in_review(page)
    page.refresh_from_db()
    assert queueing.request_generation(page) is not None
    assert pictures.candidates(page) == []
    assert not any(FileSystemStorage().exists(picture.name) for picture in made)
    page.refresh_from_db()
    assert (page.image_review, page.image_state) == (False, "generating")
    assert [row.status for row in generations(page)] == ["queued", "cancelled"]


def test_a_click_that_loses_the_claim_leaves_the_review_alone(page, published):
    made = in_review(page)
    page.refresh_from_db()
    claims.claim(Page.objects.get(pk=page.pk))  # another editor's click came first
    assert queueing.request_generation(page) is None
    assert pictures.candidates(page) == made


def test_a_broker_failure_closes_the_history_row(page):
    with celery_app(f"redis://127.0.0.1:{unused_port()}/0"), transaction.atomic():
        queueing.request_generation(page)
    (row,) = generations(page)
    assert (row.status, row.error) == ("failed", queueing.ENQUEUE_FAILED_MESSAGE)


def test_request_generations_writes_one_row_per_record_claimed(make_page, published, configure):
    configure(PRESETS={"ink": {"prompt": "In ink."}, "oil": {"prompt": "In oil."}})
    pages = [make_page(f"Page {n}") for n in range(3)]
    busy = make_page("Busy")
    claims.claim(busy)
    with CaptureQueriesContext(connection) as queries:
        started = queueing.request_generations([*pages, busy, make_page("")], preset="oil")
    inserts = [
        q for q in queries.captured_queries if "INSERT" in q["sql"] and "generation" in q["sql"]
    ]
    assert len(inserts) == 1  # one bulk insert for the batch
    assert started == pages
    for page in pages:
        (row,) = generations(page)
        assert (row.token, row.preset, row.prompt) == (
            page.image_claim_token,
            "oil",
            f"{page.image_text}\n\nIn oil.",
        )
    assert generations(busy) == []


def test_request_generations_refuses_an_unknown_preset_before_claiming(make_page, published):
    page = make_page()
    with pytest.raises(InvalidChoiceError):
        queueing.request_generations([page], preset="oil")
    page.refresh_from_db()
    assert not page.image_generating
    assert published == []
