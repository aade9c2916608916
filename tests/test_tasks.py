from __future__ import annotations

import io
import logging
import os
import time
import uuid
from decimal import Decimal

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from celery.exceptions import SoftTimeLimitExceeded
from django.core.files.storage import FileSystemStorage
from PIL import Image

from page_images import claims, pictures, provenance, queueing, tasks
from page_images.backends.base import GeneratedImage
from page_images.exceptions import (
    ContentPolicyError,
    ProviderAuthenticationError,
    TransientGenerationError,
)
from page_images.history import Generation, Picture
from page_images.provenance import TRAINED_ALGORITHMIC_MEDIA
from page_images.testing import png_bytes
from tests.backends import ScriptedBackend
from tests.machine import redis_url
from tests.reliability import case
from tests.support.jobs import assert_picture, celery_app, settled, wait_for, with_picture
from tests.testapp.models import Note, Page

pytestmark = pytest.mark.django_db(transaction=True)

FOX = "A red fox jumps over a sleeping dog at dawn"


@pytest.fixture(autouse=True)
def scripted(settings):
    settings.PAGE_IMAGES = {
        "BACKEND": "tests.backends.ScriptedBackend",
        "SIZE": "32x32",
        "MAX_RETRIES": 2,
        "RETRY_BACKOFF": 0.01,
        "RETRY_BACKOFF_MAX": 0.02,
    }
    ScriptedBackend.reset()
    return ScriptedBackend


def run(instance, token=None):
    """Run the real task body in this process (Celery's apply), as a worker would."""
    token = token or claims.claim(instance)
    job = tasks.ImageJob(label=instance._meta.label, pk=str(instance.pk), token=token)
    return tasks.generate_image.apply(args=(job.model_dump(mode="json"),))


def test_success_stores_the_picture_and_returns_the_tracking_string(page):
    result = run(page)
    assert result.get() == "job:fox-channel:page_images.generate"
    page.refresh_from_db()
    assert page.image_state == "ready"
    assert page.image.name.endswith(".png")
    assert ScriptedBackend.calls[0].prompt == page.image_text
    assert ScriptedBackend.calls[0].size == "32x32"


def test_database_connection_is_closed_while_the_provider_works(page):
    run(page)
    assert ScriptedBackend.db_closed == [True]


def test_transient_error_is_retried_then_succeeds(page):
    ScriptedBackend.reset(TransientGenerationError(detail="429"))
    run(page)
    page.refresh_from_db()
    assert page.image_state == "ready"
    assert len(ScriptedBackend.calls) == 2


HEARD: list[tuple[str, bool]] = []


def heard(instance):
    """A NOTIFIER that notes what each announcement says: the state, and whether it runs."""
    HEARD.append((instance.image_state, instance.image_started_at is not None))


def test_the_pages_hear_when_a_job_starts_waits_again_and_ends(page, settings):
    # A container says "queued" until its job starts, then "started": without the news of each,
    # an editor would read "queued 40 s ago" under a job that has been drawing for 40 s.
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "NOTIFIER": "tests.test_tasks.heard"}
    HEARD.clear()
    ScriptedBackend.reset(TransientGenerationError(detail="429"))
    run(page)
    assert HEARD == [
        ("generating", True),  # the first attempt starts
        ("generating", False),  # it waits in the queue for its retry
        ("generating", True),  # the retry starts
        ("ready", False),  # the picture
    ]


def test_a_job_cancelled_before_its_provider_failed_is_not_said_to_wait_again(page, settings):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "NOTIFIER": "tests.test_tasks.heard"}
    HEARD.clear()

    def cancel_then_fail(request):
        claims.cancel(Page.objects.get(pk=page.pk))
        return TransientGenerationError(detail="502")

    ScriptedBackend.reset(cancel_then_fail)
    run(page)
    page.refresh_from_db()
    assert (page.image_state, page.image_error) == ("empty", "")
    # The start, the cancel, then nothing from the job: its retry finds the claim gone and skips.
    assert HEARD == [("generating", True), ("empty", False)]
    assert len(ScriptedBackend.calls) == 1


def test_transient_errors_give_up_after_max_retries_with_a_message(page):
    ScriptedBackend.reset(*[TransientGenerationError("Busy, try later.")] * 5)
    run(page)
    page.refresh_from_db()
    assert len(ScriptedBackend.calls) == 3
    assert (page.image_state, page.image_error) == ("error", "Busy, try later.")
    assert page.image_claim_token is None


@pytest.mark.parametrize(
    ("error", "words"),
    [(ContentPolicyError(), "content policy"), (ProviderAuthenticationError(), "API key")],
)
def test_permanent_errors_fail_at_once(page, error, words):
    ScriptedBackend.reset(error)
    run(page)
    page.refresh_from_db()
    assert len(ScriptedBackend.calls) == 1
    assert page.image_state == "error"
    assert words in page.image_error


@pytest.mark.parametrize("content", [b"not an image", b"\x89PNG\r\n\x1a\n" + b"\0" * 100])
def test_bad_bytes_fail_with_a_message_and_store_nothing(page, content, settings):
    ScriptedBackend.reset(content)
    run(page)
    page.refresh_from_db()
    assert page.image_state == "error"
    assert "not a usable image" in page.image_error or "image" in page.image_error
    storage = FileSystemStorage(settings.MEDIA_ROOT)
    assert not storage.exists("page_images")


def test_oversize_bytes_are_refused(page, settings):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "MAX_BYTES": 100}
    run(page)
    page.refresh_from_db()
    assert page.image_state == "error"


def stored_bytes(page):
    page.refresh_from_db()
    assert page.image_state == "ready", page.image_error
    with page.image.open("rb") as stored:
        return stored.read()


def decoded(content):
    with Image.open(io.BytesIO(content)) as picture:
        picture.load()
        return picture.mode, picture.size, picture.tobytes()


def test_the_stored_picture_says_it_is_ai_generated_and_shows_the_same_pixels(page):
    run(page)
    stored = stored_bytes(page)
    with Image.open(io.BytesIO(stored)) as picture:
        xmp = picture.info["xmp"].decode()
    assert f"<Iptc4xmpExt:DigitalSourceType>{TRAINED_ALGORITHMIC_MEDIA}<" in xmp
    assert "<Iptc4xmpExt:AISystemUsed>scripted</Iptc4xmpExt:AISystemUsed>" in xmp
    assert decoded(stored) == decoded(png_bytes(32, 32))


def test_with_provenance_off_the_providers_bytes_are_stored_as_they_came(page, settings):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "PROVENANCE": False}
    run(page)
    assert stored_bytes(page) == png_bytes(32, 32)


@case(
    "provider-bytes",
    "A picture that fits MAX_BYTES only without its provenance mark (the XMP packet adds about "
    "600 bytes)",
    "The picture is stored unmarked, and the log says why; the editor sees it as any other.",
)
def test_a_picture_that_fits_max_bytes_only_unmarked_is_stored_unmarked(page, settings, caplog):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "MAX_BYTES": len(png_bytes(32, 32)) + 10}
    with caplog.at_level(logging.WARNING, logger="page_images.provenance"):
        run(page)
    assert stored_bytes(page) == png_bytes(32, 32)
    assert "Picture stored unmarked" in caplog.text


@case(
    "provider-bytes",
    "Marking the picture as AI-generated fails (a structure the writer does not know, a bug)",
    "The picture is stored as it came, and the failure is logged: the mark never costs the "
    "picture.",
)
def test_a_marking_that_fails_still_stores_the_picture(page, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the XMP writer")

    monkeypatch.setattr(provenance, "add_xmp", broken)
    with caplog.at_level(logging.WARNING, logger="page_images.provenance"):
        assert run(page).successful()
    assert stored_bytes(page) == png_bytes(32, 32)
    assert "a bug in the XMP writer" in caplog.text


@case(
    "storage",
    "The record's text is emptied after the click",
    "'There is no text to make a picture from.'; no provider call.",
)
def test_prompt_emptied_after_the_click(page):
    token = claims.claim(page)
    Page.objects.filter(pk=page.pk).update(image_text="")
    run(page, token)
    page.refresh_from_db()
    assert page.image_state == "error"
    assert "no text" in page.image_error
    assert ScriptedBackend.calls == []


def test_record_deleted_before_the_job_runs(page):
    token = claims.claim(page)
    Page.objects.filter(pk=page.pk).delete()
    assert run(page, token).successful()
    assert ScriptedBackend.calls == []


def test_a_job_whose_claim_was_retaken_does_nothing(page):
    old = claims.claim(page)
    claims.release_claim(Page, page.pk, old)
    new = claims.claim(Page.objects.get(pk=page.pk))
    run(page, old)
    assert ScriptedBackend.calls == []
    page.refresh_from_db()
    assert page.image_claim_token == new


@case(
    "worker",
    "An unexpected exception inside the job",
    "'Something went wrong while making the image. Try again.'; the claim is released and the "
    "error logged.",
)
def test_unexpected_errors_release_the_claim_and_surface(page):
    ScriptedBackend.reset(ZeroDivisionError("bug"))
    result = run(page)
    assert result.failed()
    page.refresh_from_db()
    assert (page.image_state, page.image_error) == ("error", tasks.UNEXPECTED_MESSAGE)


def test_soft_time_limit_met_inside_the_job(page):
    ScriptedBackend.reset(SoftTimeLimitExceeded())
    run(page)
    page.refresh_from_db()
    assert (page.image_state, page.image_error) == ("error", tasks.TIME_LIMIT_MESSAGE)
    assert len(ScriptedBackend.calls) == 1


def test_soft_time_limit_even_when_wrapped_by_an_http_client(page):
    try:
        raise SoftTimeLimitExceeded()
    except SoftTimeLimitExceeded as inner:
        try:
            raise ConnectionError("client wrapped it") from inner
        except ConnectionError as wrapped:
            ScriptedBackend.reset(wrapped)
    run(page)
    page.refresh_from_db()
    assert page.image_error == tasks.TIME_LIMIT_MESSAGE
    assert len(ScriptedBackend.calls) == 1


def test_models_without_the_mixin_are_refused(db):
    note = Note.objects.create(text="x")
    job = tasks.ImageJob(label="testapp.Note", pk=str(note.pk), token=uuid.uuid4())
    assert (
        tasks.generate_image.apply(args=(job.model_dump(mode="json"),)).get()
        == "job:testapp.note:page_images.generate"
    )
    assert ScriptedBackend.calls == []


def test_the_payload_is_validated_by_pydantic(page):
    result = tasks.generate_image.apply(
        args=({"label": "testapp.Page", "pk": "1", "token": "nope"},)
    )
    assert result.failed()


def test_retry_countdown_grows_and_is_capped(settings):
    settings.PAGE_IMAGES = {"RETRY_BACKOFF": 2, "RETRY_BACKOFF_MAX": 10}
    assert 1 <= tasks.retry_countdown(0) <= 2
    assert 4 <= tasks.retry_countdown(2) <= 8
    assert 5 <= tasks.retry_countdown(10) <= 10


def test_enqueue_sends_the_time_limits(page, published, settings):
    settings.PAGE_IMAGES = {"TASK_SOFT_TIME_LIMIT": 11, "TASK_TIME_LIMIT": 12, "QUEUE": "pictures"}
    queueing.enqueue_generation(page, uuid.uuid4())
    (message,) = published
    assert list(message["headers"]["timelimit"]) == [12.0, 11.0]
    assert message["routing_key"] == "pictures"


@pytest.mark.worker
@pytest.mark.redis
def test_a_worker_without_prefetch_takes_no_more_jobs_than_it_has_threads(make_page, settings):
    # docs/deployment.md's --disable-prefetch: with prefetching, a busy worker kept jobs it had no
    # thread for while another worker, idle, could not run them. Redis only, as in Celery. A worker
    # of its own: two in one process would share celery.worker.state.
    settings.PAGE_IMAGES = {
        "BACKEND": "page_images.backends.local.LocalBackend",
        # Each job outlasts the look below by a second: no thread frees up while we look.
        "OPTIONS": {"delay": 1.5},
        "SIZE": "64x64",
    }
    pages = [make_page(f"A harbour at night, number {n}") for n in range(4)]
    with (
        celery_app(redis_url(), worker_disable_prefetch=True) as app,
        start_worker(
            app, pool="threads", concurrency=2, perform_ping_check=False, loglevel="WARNING"
        ),
        redis.Redis.from_url(redis_url()) as broker,
    ):

        def waiting() -> int:  # kombu keeps a queue as a Redis list of its name
            return int(broker.llen(app.conf.task_default_queue))

        queueing.request_generations(pages)
        wait_for(lambda: waiting() <= 2)  # two jobs taken, one per thread
        time.sleep(0.5)  # a prefetching consumer reserves within milliseconds: ample time
        assert waiting() == 2, "the two other jobs wait in the broker for a free thread"
        for page in pages:
            wait_for(settled(page), timeout=30)
            assert_picture(page)


def test_a_job_for_a_record_deleted_before_it_ran_ends_quietly(page, caplog):
    token = claims.claim(page)
    job = tasks.ImageJob(label=page._meta.label, pk=str(page.pk), token=token)
    page.delete()
    with caplog.at_level(logging.INFO, logger="page_images.tasks"):
        result = tasks.generate_image.apply(args=(job.model_dump(mode="json"),))
    assert result.successful()
    assert "no longer holds its claim; skipped" in caplog.text  # its claim went with the row
    assert ScriptedBackend.calls == []


def test_a_backend_that_cannot_prepare_itself_does_not_stop_the_worker(monkeypatch, caplog):
    def broken(self):
        raise RuntimeError("no GPU today")

    monkeypatch.setattr(ScriptedBackend, "prepare", broken)
    with caplog.at_level(logging.ERROR, logger="page_images.tasks"):
        tasks.prepare_backend()  # what Celery's worker_init signal calls
    assert "The image backend could not prepare itself" in caplog.text
    assert "no GPU today" in caplog.text


def test_a_job_run_inside_a_transaction_keeps_its_connection(page):
    # Eager jobs (CELERY_TASK_ALWAYS_EAGER, ATOMIC_REQUESTS) run inside the caller's transaction:
    # closing that connection would break the caller's transaction, so it stays open.
    from django.db import transaction

    with transaction.atomic():
        run(page)
        page.refresh_from_db()
        assert page.image_state == "ready"
    assert ScriptedBackend.db_closed == [False]


def test_a_transient_error_in_a_job_called_directly_fails_with_its_message(page, caplog):
    # Called as a plain function (a host's script, not a worker), a job has no queue to retry
    # on: it fails with the provider's message rather than leaving the record claimed.
    ScriptedBackend.reset(TransientGenerationError("The image service is busy. Try again."))
    token = claims.claim(page)
    job = tasks.ImageJob(label=page._meta.label, pk=str(page.pk), token=token)
    with caplog.at_level(logging.ERROR, logger="page_images.tasks"):
        assert tasks.generate_image(job.model_dump(mode="json")) == tasks.tracking_string(
            "fox-channel"
        )
    page.refresh_from_db()
    assert (page.image_state, page.image_error) == (
        "error",
        "The image service is busy. Try again.",
    )
    assert "could not schedule its retry" in caplog.text
    assert len(ScriptedBackend.calls) == 1


# The editor's tools: the job reads what the click asked for from its history row.


def click(page, **choices):
    """The click's claim and history row, as request_generation makes them; its job not run."""
    return queueing.request_generation(page, **choices)


def generation_of(page):
    return Generation.objects.of(page).get()


def test_a_job_fills_in_its_history_row_and_keeps_the_picture_restorable(page):
    with_picture(page)
    replaced = page.image.name
    run(page, click(page))
    page.refresh_from_db()
    row = generation_of(page)
    assert (row.status, row.model, row.prompt, row.error) == ("done", "scripted", FOX, "")
    assert row.started_at <= row.finished_at
    assert row.provider_cost is None
    assert [picture.generation for picture in row.pictures.all()] == [row]
    assert [picture.name for picture in pictures.earlier(page)] == [replaced]


def test_a_job_without_a_history_row_still_works(page):
    run(page)  # claimed and queued by claims.claim() and enqueue_generation(), as before
    page.refresh_from_db()
    assert page.image_state == "ready"
    assert not Generation.objects.exists()
    assert [picture.name for picture in Picture.objects.all()] == [page.image.name]


def test_variants_are_stored_as_candidates_for_review(page, settings):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "VARIANTS": 3}
    with_picture(page)
    live = page.image.name
    token = click(page)
    run(page, token)
    assert [(call.n, call.variant) for call in ScriptedBackend.calls] == [(1, 0), (1, 1), (1, 2)]
    page.refresh_from_db()
    assert (page.image_state, page.image.name) == ("review", live)
    names = [picture.name for picture in pictures.candidates(page)]
    stem = f"{page.pk}-{token.hex[:12]}"
    assert [name.rsplit("/", 1)[1] for name in names] == [f"{stem}-{n}.png" for n in (1, 2, 3)]
    row = generation_of(page)
    assert (row.status, row.variants, row.review) == ("review", 3, True)
    assert row.finished_at is not None


def test_review_of_one_picture(page, settings):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "REVIEW": True}
    token = click(page)
    run(page, token)
    page.refresh_from_db()
    (candidate,) = pictures.candidates(page)
    assert candidate.name.endswith(f"/{page.pk}-{token.hex[:12]}.png")
    assert (page.image_state, bool(page.image)) == ("review", False)


@case(
    "concurrency",
    "An editor cancels a review job while the provider works",
    "The generation stays 'cancelled'; its candidates are deleted, nothing waits for review.",
)
def test_a_review_job_cancelled_while_the_provider_works_leaves_no_candidate(page, settings):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "REVIEW": True}

    def cancel(request):
        claims.cancel(Page.objects.get(pk=page.pk))
        return png_bytes(32, 32)

    ScriptedBackend.reset(cancel)
    run(page, click(page))
    page.refresh_from_db()
    assert page.image_state == "empty"
    assert pictures.candidates(page) == []
    assert generation_of(page).status == "cancelled"


def test_the_size_and_quality_come_from_the_click(page, settings):
    settings.PAGE_IMAGES = {
        **settings.PAGE_IMAGES,
        "PRESETS": {"strip": {"prompt": "As a comic strip.", "size": "64x32", "quality": "low"}},
    }
    run(page, click(page))
    (call,) = ScriptedBackend.calls
    assert (call.size, call.quality, call.prompt) == ("64x32", "low", f"{FOX}\n\nAs a comic strip.")


def rewrite_the_record(page, text, then=None):
    """A script step: the editor saves new text while the provider works."""

    def step(request):
        Page.objects.filter(pk=page.pk).update(image_text=text)
        return then if then is not None else png_bytes(32, 32)

    return step


def test_an_edited_prompt_is_drawn_whatever_the_record_says_meanwhile(page, settings):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "PRESETS": {"ink": {"prompt": "In ink."}}}
    ScriptedBackend.reset(rewrite_the_record(page, "A hen in a barn"))
    run(page, click(page, prompt="A grey wolf"))
    page.refresh_from_db()
    assert page.image_state == "ready"
    assert ScriptedBackend.calls[0].prompt == "A grey wolf\n\nIn ink."
    assert generation_of(page).prompt == "A grey wolf\n\nIn ink."


def test_an_edited_prompt_is_sent_as_the_editor_saw_it_whatever_the_presets_become(page, settings):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "PRESETS": {"ink": {"prompt": "In ink."}}}
    token = click(page, prompt="A grey wolf")
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "PRESETS": {"ink": {"prompt": "In oils."}}}
    run(page, token)
    assert ScriptedBackend.calls[0].prompt == "A grey wolf\n\nIn ink."


@case(
    "storage",
    "The record's text is rewritten while the provider works",
    "The picture of the old text is not stored; the job draws the new text (a retry).",
)
def test_a_picture_of_text_rewritten_meanwhile_is_made_again(page):
    ScriptedBackend.reset(rewrite_the_record(page, "A hen in a barn"))
    run(page, click(page))
    page.refresh_from_db()
    assert page.image_state == "ready"
    assert [call.prompt for call in ScriptedBackend.calls] == [FOX, "A hen in a barn"]
    assert len(os.listdir(os.path.dirname(page.image.path))) == 1  # the first was never stored
    assert generation_of(page).prompt == "A hen in a barn"


def test_a_retry_after_the_text_changed_draws_the_new_text(page):
    busy = TransientGenerationError(detail="429")
    ScriptedBackend.reset(rewrite_the_record(page, "A hen in a barn", then=busy))
    run(page, click(page))
    page.refresh_from_db()
    assert page.image_state == "ready"
    assert [call.prompt for call in ScriptedBackend.calls] == [FOX, "A hen in a barn"]
    assert generation_of(page).prompt == "A hen in a barn"


@pytest.mark.parametrize(
    ("costs", "total"),
    [
        ((Decimal("0.04"), Decimal("0.0125")), Decimal("0.0525")),
        ((Decimal("0.04"), None), None),
    ],
)
def test_the_providers_cost_is_summed_over_the_variants(page, settings, costs, total):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "VARIANTS": 2}
    ScriptedBackend.reset(
        *(GeneratedImage(content=png_bytes(32, 32), model="priced", cost=cost) for cost in costs)
    )
    run(page, click(page))
    row = generation_of(page)
    assert (row.provider_cost, row.model) == (total, "priced")


def test_a_failed_job_records_its_failure(page):
    ScriptedBackend.reset(ContentPolicyError())
    run(page, click(page))
    page.refresh_from_db()
    row = generation_of(page)
    assert (row.status, row.error) == ("failed", page.image_error)
    assert "content policy" in row.error
