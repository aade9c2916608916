"""The job on Django's tasks framework (TASK_RUNNER = "django.tasks"), in this process.

The framework's own backends run the real job: ImmediateBackend runs it at the click's commit, as
Celery's eager mode does; DummyBackend keeps what was enqueued, which shows how a retry is
scheduled. The real db_worker process is in tests/faults/test_db_worker.py (full tier).
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from page_images import claims, queueing, runners, tasks_framework
from page_images.exceptions import ContentPolicyError, EnqueueError, TransientGenerationError
from page_images.jobs import ImageJob
from tests.backends import ScriptedBackend
from tests.support.jobs import assert_picture

pytestmark = pytest.mark.django_db(transaction=True)

#: Django's own django.tasks on Django 6.0+, the django_tasks backport on 5.2.
FRAMEWORK = runners.framework_module()
IMMEDIATE = {"default": {"BACKEND": f"{FRAMEWORK}.backends.immediate.ImmediateBackend"}}
DUMMY = {"default": {"BACKEND": f"{FRAMEWORK}.backends.dummy.DummyBackend"}}


@pytest.fixture(autouse=True)
def framework(settings):
    settings.TASKS = IMMEDIATE
    settings.PAGE_IMAGES = {
        **settings.PAGE_IMAGES,
        "TASK_RUNNER": "django.tasks",
        "BACKEND": "tests.backends.ScriptedBackend",
        "SIZE": "32x32",
        "MAX_RETRIES": 2,
        "RETRY_BACKOFF": 10.0,
        "RETRY_BACKOFF_MAX": 20.0,
    }
    ScriptedBackend.reset()


def test_a_click_runs_the_job_on_the_framework_and_stores_the_picture(page):
    assert queueing.request_generation(page) is not None
    page.refresh_from_db()
    assert_picture(page, size=(32, 32))
    assert len(ScriptedBackend.calls) == 1


def test_a_transient_error_is_retried_with_the_claim_kept(page):
    ScriptedBackend.reset(TransientGenerationError(detail="429"))
    queueing.request_generation(page)
    page.refresh_from_db()
    assert_picture(page, size=(32, 32))
    assert len(ScriptedBackend.calls) == 2


def test_transient_errors_give_up_after_max_retries_with_the_message(page):
    ScriptedBackend.reset(*[TransientGenerationError(detail="503")] * 3)
    queueing.request_generation(page)
    page.refresh_from_db()
    assert (page.image_state, page.image_error) == (
        "error",
        TransientGenerationError.default_message,
    )
    assert len(ScriptedBackend.calls) == 3


def test_a_permanent_error_releases_the_claim_at_once_with_its_message(page):
    ScriptedBackend.reset(ContentPolicyError())
    queueing.request_generation(page)
    page.refresh_from_db()
    assert (page.image_state, page.image_error) == ("error", ContentPolicyError.default_message)
    assert page.image_claim_token is None
    assert len(ScriptedBackend.calls) == 1


def test_a_retry_is_a_new_task_deferred_by_the_back_off_while_the_claim_waits(page, settings):
    settings.TASKS = DUMMY
    token = claims.claim(page)
    job = ImageJob(label=page._meta.label, pk=str(page.pk), token=token)
    ScriptedBackend.reset(TransientGenerationError(detail="429"))
    before = timezone.now()
    tasks_framework.generate_image.call(job=job.model_dump(mode="json"), retries=0)
    (retry,) = tasks_framework.backend().results
    # The payload leaves pacing's fields out while they are at their defaults.
    assert retry.kwargs == {"job": job.model_dump(mode="json", exclude_defaults=True), "retries": 1}
    # RETRY_BACKOFF 10 s with jitter: between half the ceiling and the ceiling, from now.
    assert (
        before + timedelta(seconds=5)
        <= retry.task.run_after
        <= timezone.now() + timedelta(seconds=10)
    )
    page.refresh_from_db()
    assert page.image_generating
    assert page.image_claim_token == token
    assert page.image_started_at is None, "waiting again: queue time, not running time"


def test_a_retry_that_cannot_be_queued_releases_the_claim_with_the_message(page, settings):
    token = claims.claim(page)
    job = ImageJob(label=page._meta.label, pk=str(page.pk), token=token)
    ScriptedBackend.reset(TransientGenerationError(detail="429"))
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "TASK_BACKEND": "gone"}
    tasks_framework.generate_image.call(job=job.model_dump(mode="json"), retries=0)
    page.refresh_from_db()
    assert (page.image_state, page.image_error) == (
        "error",
        TransientGenerationError.default_message,
    )


def test_a_job_the_framework_cannot_take_releases_the_claim_at_the_click(page, configure):
    configure(TASK_RUNNER="django.tasks", TASK_BACKEND="gone")
    with pytest.raises(EnqueueError):
        queueing.request_generation(page)
    page.refresh_from_db()
    assert (page.image_state, page.image_error) == ("error", queueing.ENQUEUE_FAILED_MESSAGE)


def test_the_job_is_enqueued_on_the_queue_the_settings_name(page, settings):
    settings.TASKS = {"default": {**DUMMY["default"], "QUEUES": ["images"]}}
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "QUEUE": "images"}
    token = queueing.request_generation(page)
    (queued,) = tasks_framework.backend().results
    assert queued.task.queue_name == "images"
    assert queued.kwargs["job"]["token"] == str(token)
    assert queued.task.run_after is None


def test_the_soft_time_limit_needs_a_free_timer_on_the_main_thread():
    # pytest-timeout holds this process's timer: the job then runs without one of its own
    # (its claim's CLAIM_TIMEOUT still ends a job that never returns).
    assert not tasks_framework._timer_free()
    seen = []
    thread = threading.Thread(target=lambda: seen.append(tasks_framework._timer_free()))
    thread.start()
    thread.join()
    assert seen == [False]
    with tasks_framework.soft_time_limit(0.01):
        pass
