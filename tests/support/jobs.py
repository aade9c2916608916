"""Running a job and waiting for it: a Celery app of the test's own, polling, the outcome."""

from __future__ import annotations

import contextlib
import time
import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest
from celery import Celery

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable, Iterator
    from contextlib import AbstractContextManager


@contextmanager
def celery_app(broker_url: str, **conf: Any) -> Iterator[Celery]:
    """A Celery app made current for the duration, on its own queue; ``conf`` adds settings.

    ``shared_task`` resolves to the current app at call time, exactly as in a host project.
    """
    from celery import _state

    previous = _state.get_current_app()
    app = Celery(
        f"page_images_test_{uuid.uuid4().hex[:8]}",
        broker=broker_url,
        include=["page_images.tasks"],
        set_as_current=True,
    )
    app.conf.update(
        task_default_queue=f"page_images_test_{uuid.uuid4().hex}",
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        worker_hijack_root_logger=False,
        task_ignore_result=True,
        broker_transport_options={"socket_timeout": 5, "socket_connect_timeout": 5},
    )
    app.conf.update(conf)
    app.set_default()
    app.loader.import_default_modules()
    try:
        yield app
    finally:
        previous.set_current()
        previous.set_default()
        app.close()


#: The two ways the ``worker`` fixture (conftest.py) runs a test's jobs: in the test's thread
#: (Celery's eager mode; fast tier), or on a real Celery worker consuming from Redis (full tier).
EAGER = pytest.param("eager", id="eager")
REAL_WORKER = pytest.param("redis", id="redis", marks=[pytest.mark.redis, pytest.mark.worker])
#: For a test that needs its job to run beside it (a second job, a record deleted mid-job).
real_worker_only = pytest.mark.parametrize("worker", [REAL_WORKER], indirect=True)
#: The third way (full tier): TASK_RUNNER = "django.tasks", on django-tasks-db's database backend,
#: run by its real db_worker loop in a thread of this process (tests/faults/test_db_worker.py
#: starts it as a process). For the modules whose tests pass the same way on either runner.
DB_WORKER = pytest.param("db_worker", id="db_worker", marks=[pytest.mark.worker])
on_every_runner = pytest.mark.parametrize(
    "worker", [EAGER, REAL_WORKER, DB_WORKER], indirect=True, scope="module"
)
#: The tasks framework's backend the db_worker runs the jobs of.
DATABASE_TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


@contextmanager
def db_worker_thread(django_db_blocker: Any) -> Iterator[None]:
    """django-tasks-db's db_worker loop in a thread, with TASKS naming its backend.

    The loop polls the database between tests too, where pytest-django blocks database access:
    it is unblocked for the loop's lifetime (every test of the modules that use it opens the
    database anyway).
    """
    import threading

    from django.db import connections
    from django.test.utils import override_settings
    from django_tasks_db.management.commands.db_worker import Worker

    worker = Worker(
        queue_names=["default"],
        interval=0.05,
        batch=False,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id=f"page_images_test_{uuid.uuid4().hex[:8]}",
        excluded_queue_names=[],
    )

    def run() -> None:
        try:
            worker.run()
        finally:
            connections.close_all()

    with override_settings(TASKS=DATABASE_TASKS), django_db_blocker.unblock():
        thread = threading.Thread(target=run, name="db_worker", daemon=True)
        thread.start()
        try:
            yield
        finally:
            worker.running = False
            thread.join(timeout=60)


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll until ``predicate()`` is truthy; fail with the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value:
        if time.monotonic() > deadline:
            describe = getattr(predicate, "describe", None)
            found = f": {describe()}" if callable(describe) else ""
            pytest.fail(f"gave up after {timeout}s waiting for {predicate}{found}", pytrace=False)
        time.sleep(interval)
        value = predicate()
    return value


def settled(instance: Any) -> Callable[[], Any]:
    """A predicate for wait_for: the record's job has ended (it is no longer generating)."""

    def check() -> Any:
        instance.refresh_from_db()
        return not instance.image_generating

    def describe() -> str:
        """What a test that gave up reports: where the job was when it stopped waiting."""
        return (
            f"{instance._meta.label}:{instance.pk} claimed at {instance.image_claimed_at}, "
            f"running since {instance.image_started_at}, error {instance.image_error!r}"
        )

    check.describe = describe  # type: ignore[attr-defined]
    return check


def generate(instance: Any) -> Any:
    """Click (the service call behind the chip) and wait for the job to end, however it ends."""
    from page_images import queueing

    assert queueing.request_generation(instance) is not None
    wait_for(settled(instance))
    return instance


def assert_picture(instance: Any, size: tuple[int, int] = (64, 64)) -> None:
    from PIL import Image

    assert instance.image_state == "ready", instance.image_error
    with Image.open(instance.image_file.path) as picture:
        assert picture.size == size


def with_picture(instance: Any) -> Any:
    """``instance`` with a stored picture, put there the way a job does."""
    from django.core.files.base import ContentFile

    from page_images import claims
    from page_images.testing import png_bytes

    token = claims.claim(instance)
    claims.set_image_and_notify(instance, ContentFile(png_bytes(), name="a.png"), token=token)
    return instance


def worker_env(page_images: dict[str, Any], **extra: str) -> dict[str, str]:
    """The environment of a worker process started by a test: the test's settings, database and
    media folder, with ``page_images`` as its PAGE_IMAGES (tests/settings.py reads them)."""
    import json
    import os

    from django.conf import settings
    from django.db import connection

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PAGE_IMAGES_TEST_OVERRIDES": json.dumps(page_images),
        "PAGE_IMAGES_MEDIA_ROOT": settings.MEDIA_ROOT,
        **extra,
    }
    if connection.vendor == "postgresql":
        env["PAGE_IMAGES_PG_NAME"] = connection.settings_dict["NAME"]
    return env


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a worker and its pool children: no finally, no shutdown, like an OOM kill."""
    import os
    import signal

    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def recovered_after_a_kill(
    page: Any,
    provider: Any,
    settings: Any,
    page_images: dict[str, Any],
    worker: Callable[[str], AbstractContextManager[subprocess.Popen[bytes]]],
) -> None:
    """A worker killed mid-job leaves the record generating until CLAIM_TIMEOUT; then the stale
    claim is released with its message, and the next click, on a new worker, makes the picture.
    ``worker(name)`` starts a worker process with ``page_images`` (its log named ``name``)."""
    from django.core.management import call_command

    from page_images import claims, queueing
    from page_images.testing import Respond

    provider.default = Respond.hang(60)
    with worker("w1.log") as process:
        assert queueing.request_generation(page) is not None
        wait_for(lambda: provider.generation_calls == 1, timeout=30)
        kill(process)
    page.refresh_from_db()
    assert page.image_state == "generating"
    assert queueing.request_generation(page) is None, "a fresh claim must not be retaken"

    settings.PAGE_IMAGES = {**page_images, "CLAIM_TIMEOUT": 1}
    time.sleep(1.2)
    call_command("page_images_release_stale")
    page.refresh_from_db()
    assert (page.image_state, page.image_error) == ("error", claims.STALE_CLAIM_MESSAGE)

    provider.default = Respond.b64()
    with worker("w2.log"):
        assert queueing.request_generation(page) is not None
        wait_for(settled(page), timeout=30)
    assert page.image_state == "ready"


@contextmanager
def worker_process(
    command: list[str], env: dict[str, str], log: Any, ready: bytes, *, graceful: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a worker process of the test's own, its output in ``log``; yield it once ``ready``
    is in that log, and SIGKILL it (with its children) at the end, whatever happened. With
    ``graceful``, SIGTERM first: a worker that exits on its own writes its coverage data."""
    import signal
    import subprocess

    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_for(lambda: ready in log.read_bytes() or process.poll() is not None, timeout=60)
        assert process.poll() is None, log.read_text()
        yield process
    finally:
        if graceful and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        kill(process)


def ends_at_the_soft_time_limit(
    page: Any,
    provider: Any,
    settings: Any,
    page_images: dict[str, Any],
    worker: Callable[[dict[str, Any]], AbstractContextManager[subprocess.Popen[bytes]]],
    soft_limit: float = 1,
) -> None:
    """A provider that hangs past TASK_SOFT_TIME_LIMIT: the job ends with the readable "took too
    long", once (a time limit is not retried). ``worker(page_images)`` starts a worker."""
    from page_images import jobs, queueing
    from page_images.testing import Respond

    options = {**page_images["OPTIONS"], "timeout": 30}
    settings.PAGE_IMAGES = {
        **page_images,
        "OPTIONS": options,
        "TASK_SOFT_TIME_LIMIT": soft_limit,
        "TASK_TIME_LIMIT": 10,
    }
    provider.default = Respond.hang(30)
    with worker(settings.PAGE_IMAGES):
        assert queueing.request_generation(page) is not None
        wait_for(settled(page), timeout=30)
    assert (page.image_state, page.image_error) == ("error", jobs.TIME_LIMIT_MESSAGE)
    assert provider.generation_calls == 1, "a time limit is not retried"
