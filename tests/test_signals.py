"""A host's receiver that raises never leaves a record claimed or a page spinning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from page_images import claims, queueing, signals, tasks
from page_images.backends.base import BaseBackend, GeneratedImage, ImageRequest
from page_images.testing import png_bytes
from tests.backends import ScriptedBackend
from tests.reliability import case
from tests.testapp.models import Page

pytestmark = pytest.mark.django_db(transaction=True)

NOTIFIED: list[str] = []


def record_notification(instance: Any) -> None:
    NOTIFIED.append(instance.image_reference)


@pytest.fixture(autouse=True)
def scripted(settings: Any) -> None:
    settings.PAGE_IMAGES = {
        "BACKEND": "tests.backends.ScriptedBackend",
        "SIZE": "32x32",
        "NOTIFIER": "tests.test_signals.record_notification",
        "MAX_RETRIES": 0,
    }
    ScriptedBackend.reset()
    NOTIFIED.clear()


@pytest.fixture
def raising(request: pytest.FixtureRequest) -> Any:
    """Connect a receiver that raises to the signal named by the test's parameter."""
    signal = getattr(signals, request.param)

    def receiver(**kwargs: Any) -> None:
        raise RuntimeError("the host's post-processing failed")

    signal.connect(receiver, weak=False)
    yield request.param
    signal.disconnect(receiver)


def run_job(instance: Any, token: Any) -> Any:
    job = tasks.ImageJob(label=instance._meta.label, pk=str(instance.pk), token=token)
    return tasks.generate_image.apply(args=(job.model_dump(mode="json"),))


@case(
    "worker",
    "A host's generation_succeeded receiver raises",
    "Logged; the picture is stored and announced; the task succeeds.",
)
@pytest.mark.parametrize("raising", ["generation_succeeded"], indirect=True)
def test_a_success_receiver_that_raises_still_stores_and_announces(page, raising, caplog):
    result = run_job(page, claims.claim(page))
    assert result.successful(), result.traceback
    page.refresh_from_db()
    assert page.image_state == "ready"
    assert NOTIFIED[-1] == page.image_reference
    assert "the host's post-processing failed" in caplog.text


@case(
    "worker",
    "A host's generation_started receiver raises",
    "Logged; the job is queued and the record shows generating.",
)
@pytest.mark.parametrize("raising", ["generation_started"], indirect=True)
def test_a_start_receiver_that_raises_still_queues_the_job(page, raising, published):
    token = queueing.request_generation(page)
    assert token is not None
    assert len(published) == 1
    page.refresh_from_db()
    assert page.image_state == "generating"


@pytest.mark.parametrize("raising", ["generation_failed"], indirect=True)
def test_a_failure_receiver_that_raises_still_records_the_error(page, raising):
    from page_images.exceptions import ContentPolicyError

    ScriptedBackend.reset(ContentPolicyError())
    result = run_job(page, claims.claim(page))
    assert result.successful(), result.traceback
    page.refresh_from_db()
    assert page.image_state == "error"
    assert "content policy" in page.image_error
    assert NOTIFIED[-1] == page.image_reference


@case(
    "storage",
    "A record deleted while its job waits in the queue",
    "The job skips and announces the reference, so other tabs re-read it.",
)
def test_a_job_that_finds_its_record_deleted_tells_the_pages(page):
    token = claims.claim(page)
    reference = page.image_reference
    type(page).objects.filter(pk=page.pk).delete()
    run_job(page, token)
    assert [reference] == NOTIFIED


class DeletingBackend(BaseBackend):
    """Deletes the record while "the provider" works: the editor removed it mid-job."""

    def generate(self, request: ImageRequest) -> GeneratedImage:
        Page.objects.filter(pk=int(request.reference.rpartition(":")[2])).delete()
        return GeneratedImage(content=png_bytes(32, 32), content_type="image/png")


def test_a_record_deleted_while_its_picture_was_made_is_announced(page, settings):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "BACKEND": "tests.test_signals.DeletingBackend"}
    token = claims.claim(page)
    reference = page.image_reference
    result = run_job(page, token)
    assert result.successful(), result.traceback
    assert [reference, reference] == NOTIFIED  # the job's start, then the deletion
    assert not list((Path(settings.MEDIA_ROOT)).rglob("*.png")), "the picture was not kept"


class RewritingBackend(BaseBackend):
    """The editor rewrites the text while "the provider" works on the first call."""

    calls: list[str] = []

    def generate(self, request: ImageRequest) -> GeneratedImage:
        self.calls.append(request.prompt)
        if len(self.calls) == 1:
            pk = int(request.reference.rpartition(":")[2])
            Page.objects.filter(pk=pk).update(image_text="A green parrot on a lamp post")
        return GeneratedImage(content=png_bytes(32, 32), content_type="image/png")


@case(
    "storage",
    "The record's text is edited while its picture is made",
    "The picture of the old text is discarded and made again from the new text.",
)
def test_text_edited_during_a_generation_makes_the_picture_again_from_the_new_text(page, settings):
    settings.PAGE_IMAGES = {
        **settings.PAGE_IMAGES,
        "BACKEND": "tests.test_signals.RewritingBackend",
        "MAX_RETRIES": 1,
        "RETRY_BACKOFF": 0.01,
        "RETRY_BACKOFF_MAX": 0.02,
    }
    RewritingBackend.calls = []
    result = run_job(page, claims.claim(page))
    assert result.successful(), result.traceback
    assert RewritingBackend.calls == [page.image_text, "A green parrot on a lamp post"]
    page.refresh_from_db()
    assert page.image_state == "ready"
