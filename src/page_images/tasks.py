"""The job on Celery: a ``shared_task`` bound to :func:`page_images.jobs.run`.

What the job guarantees (claims kept, renewed and released, messages for the editor) lives in
:mod:`page_images.jobs`; this module only tells it what Celery offers: the retry count, a retry
with a countdown, and the exception Celery raises at the soft time limit. The hard time limit and
a killed worker are covered by the claim going stale after ``CLAIM_TIMEOUT``.

Celery is the ``[celery]`` extra: this module is imported only where Celery runs the jobs.
"""

from __future__ import annotations

from typing import Any

from page_images.exceptions import MissingDependencyError

try:
    from celery import Task, shared_task
    from celery.exceptions import Retry, SoftTimeLimitExceeded
    from celery.signals import worker_init
except ImportError as exc:  # pragma: no cover - the no-extras tox environment proves it
    raise MissingDependencyError("Celery", "celery") from exc

from page_images import jobs
from page_images.exceptions import TransientGenerationError
from page_images.jobs import (
    TIME_LIMIT_MESSAGE,
    UNEXPECTED_MESSAGE,
    WORKFLOW,
    ImageJob,
    retry_countdown,
    tracking_string,
)

__all__ = [
    "TIME_LIMIT_MESSAGE",
    "UNEXPECTED_MESSAGE",
    "WORKFLOW",
    "ImageJob",
    "generate_image",
    "prepare_backend",
    "retry_countdown",
    "tracking_string",
]


@worker_init.connect(weak=False)
def prepare_backend(**kwargs: Any) -> None:
    """Let the backend do its slow set-up when a worker starts, not inside the first job."""
    jobs.prepare_backend()


class CeleryAttempt:
    """One attempt of the job as Celery runs it (:class:`page_images.jobs.Attempt`)."""

    time_limit: type[BaseException] = SoftTimeLimitExceeded

    def __init__(self, task: Task[Any, Any]) -> None:
        self.task = task
        self.retries: int = task.request.retries
        #: Celery's ``Retry``, raised once the job has settled its claim: the worker reads it
        #: as "retried", not as a failure.
        self.scheduled: Retry | None = None

    def retry(
        self, error: TransientGenerationError, countdown: float, job: ImageJob | None = None
    ) -> None:
        # The job decides whether to retry (MAX_RETRIES, not counting pacing's hand-backs, which
        # Celery counts as retries too): no limit of Celery's own on top.
        options: dict[str, Any] = (
            {} if job is None else {"args": (job.model_dump(mode="json", exclude_defaults=True),)}
        )
        try:
            raise self.task.retry(exc=error, countdown=countdown, max_retries=None, **options)
        except Retry as scheduled:
            self.scheduled = scheduled


@shared_task(bind=True, name=WORKFLOW, pydantic=True)
def generate_image(self: Task[Any, Any], job: ImageJob) -> str:
    """Make and store the picture for ``job``; return ``job:<channel>:page_images.generate``."""
    attempt = CeleryAttempt(self)
    tracking = jobs.run(job, attempt)
    if attempt.scheduled is not None:
        raise attempt.scheduled
    return tracking
