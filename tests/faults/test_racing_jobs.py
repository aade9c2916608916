"""Two jobs for one record race: the job of an old claim must never overwrite a newer picture.

Job A is still waiting on a slow provider when its claim goes stale and the next click retakes it
(job B). B's picture is stored first; when A's answer finally arrives, A no longer holds the claim:
its picture is discarded, its file deleted, and B's picture stays. A real Celery worker (threads
pool), the real LiteLLM and the fake provider; in-memory and Redis brokers.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from celery.signals import task_postrun

from page_images import queueing
from page_images.testing import Respond
from tests.reliability import case
from tests.support.jobs import real_worker_only, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker")]


@case(
    "concurrency",
    "A job whose claim went stale answers after the newer job stored its picture",
    "The newer picture stays; the stale picture is discarded and its file deleted.",
)
@real_worker_only
def test_a_stale_job_never_overwrites_a_newer_picture(
    page, provider, litellm_settings, settings, caplog
):
    caplog.set_level(logging.INFO, logger="page_images.tasks")
    ended: list[str] = []
    lock = threading.Lock()

    def record(**kwargs: object) -> None:
        with lock:
            ended.append(str(kwargs.get("state")))

    task_postrun.connect(record, weak=False, dispatch_uid="racing-jobs")
    try:
        # Job A's answer comes late, yet well inside LiteLLM's 3 s timeout: A must really get its
        # picture back after B stored one, not time out and retry.
        provider.push(Respond.hang(1.5))
        first = queueing.request_generation(page)
        assert first is not None
        wait_for(lambda: provider.generation_calls == 1)

        settings.PAGE_IMAGES = {**litellm_settings, "CLAIM_TIMEOUT": 0.2}
        wait_for(lambda: queueing.request_generation(page) is not None, timeout=5)  # job B
        wait_for(lambda: len(ended) == 2, timeout=30)
    finally:
        task_postrun.disconnect(dispatch_uid="racing-jobs")

    page.refresh_from_db()
    assert page.image_state == "ready"
    second = page.image_claim_token  # released: None
    assert second is None
    stored = [p.name for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]
    assert stored == [Path(page.image.name).name], "only the newer picture may stay on disk"
    assert first.hex[:12] not in page.image.name, "the stale job's picture was stored"
    assert provider.generation_calls == 2
    assert "lost its claim while running; picture discarded" in caplog.text
