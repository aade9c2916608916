"""The job on Django's tasks framework, run by a real worker of that framework.

TASK_RUNNER = "django.tasks" with django-tasks-db's DatabaseBackend: the click enqueues a row in
the real database (PostgreSQL in the full tier), and `manage.py db_worker`, started from the
command line, runs it, calling the real LiteLLM against the fake provider on 127.0.0.1 and
writing to the same test database and media folder. Each test starts its own worker on its own
queue and kills only that worker. The same guarantees as on Celery (tests/faults/test_worker.py,
tests/faults/test_provider.py): a transient error is retried with the claim kept, a permanent
one releases it with its message, a job past its soft time limit says so, and a killed worker's
claim is retaken once CLAIM_TIMEOUT has passed.
"""

from __future__ import annotations

import json
import sys
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from page_images import queueing
from page_images.testing import Respond
from tests.reliability import case
from tests.support.jobs import (
    assert_picture,
    ends_at_the_soft_time_limit,
    recovered_after_a_kill,
    settled,
    wait_for,
    worker_env,
    worker_process,
)
from tests.support.web import client_for, post

if TYPE_CHECKING:
    import subprocess
    from contextlib import AbstractContextManager
    from pathlib import Path

pytestmark = [pytest.mark.process, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def queue() -> str:
    """A queue of the test's own: a worker never takes another test's job."""
    return f"page_images_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def on_the_framework(settings, litellm_settings, queue) -> dict[str, Any]:
    """PAGE_IMAGES for LiteLLM against the fake provider, its jobs on the database backend."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": [queue]}}
    settings.PAGE_IMAGES = {**litellm_settings, "TASK_RUNNER": "django.tasks", "QUEUE": queue}
    return settings.PAGE_IMAGES


def db_worker(
    queue: str, page_images: dict[str, Any], log: Path
) -> AbstractContextManager[subprocess.Popen[bytes]]:
    """`manage.py db_worker` in a process of its own, on ``queue``, with these settings."""
    from django.conf import settings

    command = [
        *(sys.executable, "-m", "django", "db_worker"),
        *("--queue-name", queue, "--worker-id", queue),
        *("--interval", "0.1", "--no-startup-delay", "--no-reload"),
    ]
    env = worker_env(page_images, PAGE_IMAGES_TEST_TASKS=json.dumps(settings.TASKS))
    return worker_process(command, env, log, b"Starting worker", graceful=True)


@case(
    "worker",
    'Django\'s tasks framework (TASK_RUNNER = "django.tasks"): a click, a db_worker process',
    "The job is a row in the database; the worker makes the picture and the chip shows it.",
)
def test_a_click_through_the_view_stores_the_picture(
    page, editor, provider, on_the_framework, queue, tmp_path
):
    with db_worker(queue, on_the_framework, tmp_path / "w.log"):
        assert post(client_for(editor), page).status_code == 200
        wait_for(settled(page), timeout=30)
    assert_picture(page)
    assert provider.requests[0].prompt == page.image_text


@case(
    "worker",
    "Django's tasks framework (db_worker): a burst of 429 then 500 answers",
    "The job is enqueued again with run_after (the back-off), its claim kept; then the picture.",
)
def test_a_transient_error_is_retried_by_a_new_task(
    page, provider, on_the_framework, queue, tmp_path
):
    provider.push(Respond.rate_limited(), Respond.server_error())
    with db_worker(queue, on_the_framework, tmp_path / "w.log"):
        assert queueing.request_generation(page) is not None
        wait_for(settled(page), timeout=30)
    assert_picture(page)
    assert provider.generation_calls == 3


@case(
    "worker",
    "Django's tasks framework (db_worker): a content-policy refusal",
    "At once, no retry: the claim is released with the provider's reason.",
)
def test_a_permanent_error_releases_the_claim_with_its_message(
    page, provider, on_the_framework, queue, tmp_path
):
    provider.push(Respond.content_policy())
    with db_worker(queue, on_the_framework, tmp_path / "w.log"):
        assert queueing.request_generation(page) is not None
        wait_for(settled(page), timeout=30)
    assert page.image_state == "error"
    assert "content policy" in page.image_error
    assert page.image_claim_token is None
    assert provider.generation_calls == 1


@case(
    "worker",
    "Django's tasks framework (db_worker): the job passes TASK_SOFT_TIME_LIMIT",
    "'The image took too long to make. Try again.' (a timer on the worker's main thread); "
    "not retried.",
)
def test_the_soft_time_limit_ends_with_a_readable_error(
    page, provider, on_the_framework, settings, queue, tmp_path
):
    ends_at_the_soft_time_limit(
        page,
        provider,
        settings,
        on_the_framework,
        lambda page_images: db_worker(queue, page_images, tmp_path / "w.log"),
        # The first LiteLLM call of a fresh worker spends more than a second before it sends
        # the request under coverage; the limit must fall while the provider hangs.
        soft_limit=4,
    )


@case(
    "worker",
    "Django's tasks framework: the db_worker SIGKILLed mid-job",
    "Generating until CLAIM_TIMEOUT; then page_images_release_stale (or the next click) shows "
    "'The image job did not finish in time. Try again.' and the next click makes the picture.",
)
def test_a_worker_killed_mid_job_is_recovered(
    page, provider, on_the_framework, settings, queue, tmp_path
):
    recovered_after_a_kill(
        page,
        provider,
        settings,
        on_the_framework,
        lambda name: db_worker(queue, on_the_framework, tmp_path / name),
    )
