from __future__ import annotations

import asyncio
import os
import signal
from typing import TYPE_CHECKING, Any

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import before_task_publish
from hypothesis import settings as hypothesis_settings

from page_images.testing import FakeImageProvider
from tests import machine
from tests.celery_app import app as _test_app  # noqa: F401  (the current app: memory://, never a real broker by accident)
from tests.support.jobs import EAGER, REAL_WORKER, celery_app, db_worker_thread
from tests.testapp.models import Page, Poster, Story

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator

    from celery import Celery

#: make test and make test-full: markers, guards and what each tier leaves out.
pytest_plugins = ["tests.support.tiers"]

# Hypothesis: few examples on a laptop (seconds), many under CI; HYPOTHESIS_PROFILE overrides.
# Tests that ask for their own count scale it by the active profile (tests/support/fuzz.py).
hypothesis_settings.register_profile("ci", max_examples=100, deadline=None, database=None)
hypothesis_settings.register_profile("dev", max_examples=10, deadline=None, database=None)
hypothesis_settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if machine.CI else "dev")
)


# A suite started in the background (`nohup`, `&` in a script without job control) has Ctrl-C
# ignored, and an ignored signal stays ignored in every process a test starts: the tests that
# interrupt a backfill would see it sleep through their SIGINT. Python's handler is reset by exec.
signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_report_header(config: pytest.Config) -> list[str]:
    from django.conf import settings

    import page_images

    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    return [
        f"page_images: database={engine}, CI={machine.CI}",
        # The wheel's run (.ci/wheel) shows here that it tests the installed copy, not src/.
        f"page_images: imported from {os.path.dirname(page_images.__file__)}",
    ]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Under CI a skipped test is a test that proved nothing: fail the run and say which.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if machine.CI and skipped:
        reporter.write_line(f"CI=true: {len(skipped)} skipped test(s) count as failures.", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True, scope="session")
def _deliberately_broken() -> Iterator[None]:
    """``PAGE_IMAGES_TEST_BREAK=<variant>`` runs the tests against a deliberately broken variant
    (tests/faults/broken.py), to show that the tests guarding it fail."""
    name = os.environ.get("PAGE_IMAGES_TEST_BREAK")
    if not name:
        yield
        return
    from tests.faults.broken import VARIANTS

    with VARIANTS[name]():
        yield


@pytest.fixture(autouse=True)
def _media_root(settings: Any, tmp_path: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def configure(settings: Any) -> Callable[..., None]:
    """``configure(REVIEW=True, ...)``: PAGE_IMAGES as the test settings have it, with these."""
    base = dict(settings.PAGE_IMAGES)

    def apply(**overrides: Any) -> None:
        settings.PAGE_IMAGES = {**base, **overrides}

    return apply


@pytest.fixture
def story(db: None) -> Story:
    return Story.objects.create(title="The fox", channel="fox-channel")


@pytest.fixture
def make_page(story: Story) -> Callable[..., Page]:
    def make(text: str = "A red fox jumps over a sleeping dog at dawn", **fields: Any) -> Page:
        return Page.objects.create(story=story, image_text=text, **fields)

    return make


@pytest.fixture
def page(make_page: Callable[..., Page]) -> Page:
    return make_page()


@pytest.fixture
def poster(db: None) -> Poster:
    return Poster.objects.create(headline="Harvest fair", mood="sunny")


@pytest.fixture
def provider() -> Iterator[FakeImageProvider]:
    with FakeImageProvider(image_size=(64, 64)) as fake:
        yield fake


@pytest.fixture
def litellm_settings(
    settings: Any, provider: FakeImageProvider, request: pytest.FixtureRequest
) -> dict[str, Any]:
    """PAGE_IMAGES for the real LiteLLM backend pointed at the fake provider (and on the tasks
    framework when the test's ``worker`` is the db_worker)."""
    callspec = getattr(request.node, "callspec", None)
    runner = (
        {"TASK_RUNNER": "django.tasks"}
        if callspec and callspec.params.get("worker") == "db_worker"
        else {}
    )
    settings.PAGE_IMAGES = {
        **runner,
        "BACKEND": "page_images.backends.litellm.LiteLLMBackend",
        "OPTIONS": {
            "model": "openai/gpt-image-1",
            "api_base": provider.api_base,
            "api_key": "sk-test-not-a-key",
            "timeout": 3,
        },
        "SIZE": "64x64",
        "ALLOW_LOOPBACK_DOWNLOADS": True,
        "DOWNLOAD_TIMEOUT": 3,
        "RETRY_BACKOFF": 0.05,
        "RETRY_BACKOFF_MAX": 0.1,
        "MAX_RETRIES": 2,
    }
    return settings.PAGE_IMAGES


@pytest.fixture(scope="module", params=[EAGER, REAL_WORKER])
def worker(request: pytest.FixtureRequest, django_db_blocker: Any) -> Iterator[Celery | None]:
    """Where the jobs of a test run, once each way:

    - ``eager`` (fast tier): in the test's own thread, as Celery's ``task_always_eager`` runs
      them: the real task, its retries (without their back-off wait), LiteLLM, the fake provider,
      the database and the storage; no broker, no worker.
    - ``redis`` (full tier): a real Celery worker (threads pool) consuming from the real Redis, in
      this process. One per test module: starting and stopping one costs seconds.
    - ``db_worker`` (full tier, for modules marked ``on_every_runner``): django-tasks-db's
      db_worker loop in a thread, running the jobs of TASK_RUNNER = "django.tasks".
    """
    if request.param == "db_worker":
        with db_worker_thread(django_db_blocker):
            yield None
        return
    if request.param == "eager":
        with celery_app("memory://", task_always_eager=True) as app:
            yield app
        return
    with (
        celery_app(machine.redis_url()) as app,
        start_worker(
            app,
            pool="threads",
            concurrency=4,
            perform_ping_check=False,
            loglevel="WARNING",
            shutdown_timeout=10,
        ),
    ):
        yield app


@pytest.fixture
def own_redis(tmp_path: Any) -> Iterator[Any]:
    """A redis-server of the test's own on a free port, which the test may kill and restart."""
    from tests.servers import OwnRedis

    server = OwnRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _close_a_stray_event_loop() -> Iterator[None]:
    """Close an event loop a test left set on the main thread, once the test is over.

    LiteLLM's synchronous calls (``ServiceLogging._sync_dispatch_loop``) ask for the thread's
    event loop, which creates and sets one on the main thread that nothing closes; when a later
    test's ``asyncio.run`` replaces it, the collector reports the unclosed loop and its socket
    pair (``ResourceWarning``) in whichever test runs then. (A worker calls LiteLLM on threads of
    its own, which get no such loop.)
    """
    yield
    local = getattr(asyncio.get_event_loop_policy(), "_local", None)
    loop = getattr(local, "_loop", None)
    if loop is not None and not loop.is_running() and not loop.is_closed():
        loop.close()
        asyncio.set_event_loop(None)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium for a module of browser tests (tests/support/demo.py)."""
    from tests.support.demo import chromium

    with chromium() as opened:
        yield opened


@pytest.fixture
def published() -> Iterator[list[dict[str, Any]]]:
    """Every task message really handed to a broker during the test (Celery's own signal)."""
    messages: list[dict[str, Any]] = []

    def record(
        sender: str | None = None,
        headers: Any = None,
        routing_key: str = "",
        body: Any = None,
        **kwargs: Any,
    ) -> None:
        messages.append(
            {"task": sender, "headers": headers, "routing_key": routing_key, "body": body}
        )

    before_task_publish.connect(record, weak=False)
    yield messages
    before_task_publish.disconnect(record)


os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture
def editor(django_user_model: Any) -> Any:
    """A user with the change permission on pages and posters."""
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("editor", password="pw")
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["change_page", "change_poster"])
    )
    return django_user_model.objects.get(pk=user.pk)


@pytest.fixture
def reader(django_user_model: Any) -> Any:
    """A logged-in user without any permission."""
    return django_user_model.objects.create_user("reader", password="pw")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test says what its browser tab, demo stack or installed site saw, from any
    fixture value with an ``evidence()`` (tests/support/demo.py, tests/test_install.py): a flake
    in CI is then a report to read, not a guess."""
    report = yield
    if report.when != "call" or not report.failed:
        return report
    for name, value in getattr(item, "funcargs", {}).items():
        evidence = getattr(value, "evidence", None)
        if not callable(evidence):
            continue
        try:
            report.sections.append((f"what {name} saw", evidence()))
        except Exception as exc:  # the browser itself may be what failed
            report.sections.append((f"what {name} saw", f"no evidence: {exc!r}"))
    return report
