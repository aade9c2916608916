"""Running a job and waiting for it: a Celery app of the test's own, polling, the outcome."""

from __future__ import annotations

import time
import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest
from celery import Celery

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


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
