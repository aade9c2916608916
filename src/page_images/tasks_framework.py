"""The job on Django's tasks framework: ``django.tasks`` on Django 6.0+, the backport on 5.2.

Chosen with ``PAGE_IMAGES["TASK_RUNNER"] = "django.tasks"``. The job is the same as on Celery
(:mod:`page_images.jobs`); what differs is what the framework gives it:

- **Retries.** The framework has none: a transient error enqueues the next attempt as a new task
  with ``run_after`` (the back-off), while the claim is kept, as Celery's ``retry`` does. A
  backend that cannot defer (``ImmediateBackend``) runs it at once, as Celery's eager mode does.
- **Soft time limit.** The framework has none: where the job runs on a process's main thread (as
  ``db_worker`` runs it) a timer raises :class:`JobTimeLimitExceeded` inside it after
  ``TASK_SOFT_TIME_LIMIT``, and the editor reads "took too long". Elsewhere, and for the hard
  limit, a job that never ends is found by its claim, which goes stale after ``CLAIM_TIMEOUT``,
  exactly as a Celery worker killed mid-job is.

Django 6's own ``django.tasks`` is used whenever it exists; the ``django_tasks`` backport only on
earlier Djangos. Backends written for the backport, such as django-tasks-db's
``DatabaseBackend`` and its ``db_worker``, accept ``django.tasks`` tasks on Django 6.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from page_images import jobs
from page_images.conf import app_settings
from page_images.exceptions import MissingDependencyError, PageImagesError

try:
    from django.tasks import task, task_backends
except ImportError:
    try:  # the backport's API is Django's; mypy reads Django's from django-stubs
        from django_tasks import task, task_backends  # type: ignore[no-redef,assignment]
    except ImportError as exc:  # pragma: no cover - the no-extras tox environment proves it
        raise MissingDependencyError("django-tasks (on Django before 6.0)", "tasks") from exc

if TYPE_CHECKING:
    from collections.abc import Iterator

    from page_images.exceptions import TransientGenerationError

__all__ = ["JobTimeLimitExceeded", "enqueue", "generate_image"]

#: The framework's own default queue, used when ``PAGE_IMAGES["QUEUE"]`` is None.
DEFAULT_QUEUE = "default"


class JobTimeLimitExceeded(PageImagesError):
    """Raised inside a job that passed ``TASK_SOFT_TIME_LIMIT`` (this framework has no limit)."""


class FrameworkAttempt:
    """One attempt of the job as the tasks framework runs it (:class:`page_images.jobs.Attempt`)."""

    time_limit: type[BaseException] = JobTimeLimitExceeded

    def __init__(self, job: jobs.ImageJob, retries: int) -> None:
        self.job = job
        self.retries = retries

    def retry(
        self, error: TransientGenerationError, countdown: float, job: jobs.ImageJob | None = None
    ) -> None:
        enqueue(job or self.job, retries=self.retries + 1, countdown=countdown)


def _timer_free() -> bool:
    # The timer is the process's one SIGALRM: only on the main thread (where signals land), and
    # never over a timer someone else set (pytest-timeout, a host's own watchdog).
    return (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    )


@contextmanager
def soft_time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`JobTimeLimitExceeded` in the block after ``seconds``, where a timer can."""
    if not _timer_free():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise JobTimeLimitExceeded(f"the job ran past TASK_SOFT_TIME_LIMIT ({seconds} s)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# The framework finds a task by its function's path: ``page_images.tasks_framework.generate_image``
# is the job's stable name on it. The queue and backend given here are checked when the module is
# imported; each enqueue names those the settings ask for then.
@task(queue_name=app_settings.QUEUE or DEFAULT_QUEUE, backend=app_settings.TASK_BACKEND)
def generate_image(job: dict[str, Any], retries: int = 0) -> str:
    """One attempt of the job whose payload is ``job`` (an :class:`ImageJob` as JSON)."""
    payload = jobs.ImageJob.model_validate(job)
    # The framework's workers have no start-up hook: the backend prepares itself (once; later
    # calls cost nothing) before the clock starts, so LiteLLM's import is not job time.
    jobs.prepare_backend()
    with soft_time_limit(app_settings.TASK_SOFT_TIME_LIMIT):
        return jobs.run(payload, FrameworkAttempt(payload, retries))


def backend() -> Any:
    """The framework's backend that ``TASK_BACKEND`` names (an error names a wrong alias)."""
    return task_backends[app_settings.TASK_BACKEND]


def enqueue(job: jobs.ImageJob, *, retries: int = 0, countdown: float = 0) -> None:
    """Enqueue an attempt of ``job`` on the configured backend and queue, ``countdown`` seconds
    from now where the backend can defer a task (else at once)."""
    options: dict[str, Any] = {
        "backend": app_settings.TASK_BACKEND,
        "queue_name": app_settings.QUEUE or DEFAULT_QUEUE,
    }
    if countdown and backend().supports_defer:
        options["run_after"] = timezone.now() + timedelta(seconds=countdown)
    generate_image.using(**options).enqueue(
        job=job.model_dump(mode="json", exclude_defaults=True), retries=retries
    )
