"""Storage and the record fail under a running job: a real Celery worker (threads pool, in-memory
and Redis brokers) calling the real LiteLLM against the fake provider, the real storage code.

The promises: no half-written record, no orphan file, a readable error, and the next click works;
a record deleted mid-job ends the job cleanly, with nothing left on disk.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from celery.signals import task_postrun

from page_images import queueing
from page_images.exceptions import StorageWriteError
from page_images.testing import Respond
from tests.reliability import case
from tests.support.jobs import assert_picture, generate, real_worker_only, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker")]


def files_under(root: str) -> list[Path]:
    return [path for path in Path(root).rglob("*") if path.is_file()]


@case(
    "storage",
    "The disk fills up while the picture is written (ENOSPC after the first chunk)",
    f"'{StorageWriteError.default_message}'; no image on the record, no partial file left; the "
    "next click makes the picture.",
)
def test_disk_full_leaves_no_partial_file_and_a_readable_error(
    page, provider, litellm_settings, settings
):
    default = settings.STORAGES["default"]
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "tests.testapp.storage.DiskFullStorage"},
    }
    provider.default = Respond.b64()
    generate(page)
    assert (page.image_state, page.image_error) == ("error", StorageWriteError.default_message)
    assert not page.image
    assert files_under(settings.MEDIA_ROOT) == []
    assert provider.generation_calls == 1, "a storage failure is not retried at the provider"

    settings.STORAGES = {**settings.STORAGES, "default": default}
    generate(page)
    assert_picture(page)


@case(
    "storage",
    "The record is deleted while its job waits for the provider",
    "The job ends cleanly (no error, no retry); the picture is discarded, no file left behind.",
)
@real_worker_only
def test_record_deleted_while_its_job_runs(page, provider, litellm_settings, settings):
    ended = threading.Event()
    states: list[str] = []

    def record(state: str = "", **kwargs: object) -> None:
        states.append(state)
        ended.set()

    task_postrun.connect(record, weak=False, dispatch_uid="deleted-mid-job")
    try:
        provider.push(Respond.hang(1.5))
        assert queueing.request_generation(page) is not None
        wait_for(lambda: provider.generation_calls == 1)
        page.delete()
        assert ended.wait(timeout=30)
    finally:
        task_postrun.disconnect(dispatch_uid="deleted-mid-job")
    assert states == ["SUCCESS"]
    assert files_under(settings.MEDIA_ROOT) == []
