"""Previews while the picture is drawn, and the usual wait, in real headless Chromium (issue 14).

The whole stack is real: the example project (uvicorn, a Celery worker on a Redis of the test's
own, the Redis event bus, SQLite), LiteLLMBackend, and the fake provider as a process of its own
(``python -m page_images.testing``), streaming OpenAI's partial images on a schedule. The page
itself says when the editor's click happened, when the first preview was on the screen and when
the picture was (``performance.now()``, a MutationObserver, the images' load events and the next
frame), so the figure is the editor's, not the server's.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from tests.servers import OwnRedis, free_port
from tests.support.demo import ROOT, Demo, container, demo_stack, doc_shot, editor_tab, shot

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.browser, pytest.mark.process, pytest.mark.worker, pytest.mark.redis]

#: The issue's case: a 20 s job whose provider streams its first partial at 30 % of it.
JOB_SECONDS = 20.0
FIRST_PARTIAL = 0.3
#: The target: the first preview on the editor's screen by 35 % of the job's time. Under the
#: coverage tracer (PAGE_IMAGES_COVERAGE=1, as CI measures coverage) every Python step of the path
#: (the click, the job's start, the preview's check, store and event, the re-fetch) runs two to
#: three times slower on a busy 2-CPU machine: measured 37 % there, against 33 % without. So it
#: gets 45 %, which a preview that waited for the picture (about 95 %) or for a poll still fails;
#: `make bench` (target 6) measures the 35 % on pinned CPUs.
TARGET = 0.45 if os.environ.get("PAGE_IMAGES_COVERAGE") == "1" else 0.35


@contextlib.contextmanager
def fake_provider(latency: float, partials_at: str) -> Iterator[str]:
    """The fake provider as the development server a site runs: its own process; its api_base."""
    port = free_port()
    command = [
        *(sys.executable, "-m", "page_images.testing", "--port", str(port)),
        *("--latency", str(latency), "--partials-at", partials_at, "--size", "512x512"),
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            assert "Fake image provider at" in server.stdout.readline()
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            server.terminate()


@contextlib.contextmanager
def stack_with(
    folder: Path, *, latency: float, previews: int, model: str | None = None
) -> Iterator[Demo]:
    """The demo on a Redis of its own; with ``model``, drawn by the fake provider's process."""
    redis = OwnRedis(folder)
    redis.start()
    (folder / "demo").mkdir()
    try:
        with contextlib.ExitStack() as stack:
            provider = None
            if model:
                api_base = stack.enter_context(fake_provider(latency, f"{FIRST_PARTIAL},0.6"))
                provider = (model, api_base)
            yield stack.enter_context(
                demo_stack(
                    folder / "demo",
                    job_seconds=latency,
                    redis_url=redis.url,
                    previews=previews,
                    provider=provider,
                )
            )
    finally:
        redis.stop()


@pytest.fixture(scope="module")
def streaming(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """gpt-image-1, which streams partial images, asked for two of them (PREVIEWS = 2)."""
    folder = tmp_path_factory.mktemp("previews")
    with stack_with(folder, latency=JOB_SECONDS, previews=2, model="openai/gpt-image-1") as running:
        yield running


@pytest.fixture(scope="module")
def painter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The demo as `make demo` runs it (the LocalBackend paints coarse previews), on Redis."""
    with stack_with(tmp_path_factory.mktemp("painter"), latency=6.0, previews=2) as running:
        yield running


@pytest.fixture(scope="module")
def not_streaming(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """dall-e-2, which cannot stream: PREVIEWS asks in vain, the estimate is what there is."""
    folder = tmp_path_factory.mktemp("estimate")
    with stack_with(folder, latency=3.0, previews=2, model="openai/dall-e-2") as running:
        yield running


#: Installed in the page before the click: when the click, the first preview and the picture of
#: the article's container were on the screen, by the page's own clock.
TIMING = """article => {
  const t = window.__timing = {click: null, preview: null, picture: null, previews: []};
  const root = document.querySelectorAll("article.page")[article];
  root.addEventListener("click", event => {
    if (t.click === null && event.target.closest("button")) { t.click = performance.now(); }
  }, true);
  const seen = new WeakSet();
  function shown(img, key) {
    // Loaded, then painted: the next frame after the load is when the editor can see it.
    requestAnimationFrame(() => {
      const now = performance.now();
      if (key === "preview") { t.previews.push(img.getAttribute("src")); }
      if (t[key] === null) { t[key] = now; }
    });
  }
  function watch(img, key) {
    if (seen.has(img)) { return; }
    seen.add(img);
    if (img.complete && img.naturalWidth > 0) { shown(img, key); }
    else { img.addEventListener("load", () => shown(img, key), {once: true}); }
  }
  new MutationObserver(() => {
    root.querySelectorAll("img.page-images-preview").forEach(img => watch(img, "preview"));
    root.querySelectorAll("img.page-images-image").forEach(img => watch(img, "picture"));
  }).observe(root, {childList: true, subtree: true});
}"""


def test_the_first_preview_is_on_the_screen_by_35_percent_of_the_job(
    streaming: Demo, browser: Any
) -> None:
    from playwright.sync_api import expect

    with editor_tab(browser, streaming.url, streaming) as tab:
        box = container(tab, 0)
        tab.evaluate(TIMING, 0)
        box.get_by_role("button", name="Generate image").click()
        preview = box.locator("img.page-images-preview")
        preview.wait_for(timeout=int(JOB_SECONDS * 1000))
        expect(box.locator(".page-images-preview-label")).to_have_text("Preview")
        assert preview.get_attribute("alt") == (
            "Preview: a rough, blurred version of the image being generated"
        )
        assert preview.evaluate("img => getComputedStyle(img).filter").startswith("blur(")
        expect(box.locator("p.page-images-generating")).to_contain_text("Generating image…")
        shot(tab, "preview-1-first")
        box.locator("img.page-images-image").wait_for(timeout=int(JOB_SECONDS * 2000))
        tab.wait_for_function("() => window.__timing.picture !== null")
        timing = tab.evaluate("window.__timing")
        shot(tab, "preview-2-picture")
        assert box.locator("img.page-images-preview").count() == 0
    job = (timing["picture"] - timing["click"]) / 1000
    first = (timing["preview"] - timing["click"]) / 1000
    print(f"first preview on the screen at {first:.2f} s of {job:.2f} s: {first / job:.1%}")
    assert job >= JOB_SECONDS, timing
    assert first / job <= TARGET, f"first preview at {first / job:.1%} of the job ({timing})"
    # Both previews were shown, one after the other, before the picture.
    assert [src.rsplit("-", 1)[-1] for src in timing["previews"]] == ["0.png", "1.png"], timing
    leftovers = list((streaming.state / "media").rglob("*preview*"))
    assert leftovers == []


def test_the_demo_shows_each_coarser_preview_then_the_picture(painter: Demo, browser: Any) -> None:
    from playwright.sync_api import expect

    with editor_tab(browser, painter.url, painter) as tab:
        box = container(tab, 0)
        tab.evaluate(TIMING, 0)
        box.get_by_role("button", name="Generate image").click()
        expect(box.locator("img.page-images-preview")).to_have_attribute(
            "src", re.compile(r"-preview-1\.png$"), timeout=10_000
        )
        tab.wait_for_function("() => window.__timing.previews.length === 2")
        expect(box.locator(".page-images-preview-label")).to_have_text("Preview")
        doc_shot(box.locator("xpath=ancestor::article"), "preview")
        box.locator("img.page-images-image").wait_for()
        tab.wait_for_function("() => window.__timing.picture !== null")
        timing = tab.evaluate("window.__timing")
    assert timing["click"] < timing["preview"] < timing["picture"], timing
    assert list((painter.state / "media").rglob("*preview*")) == []


def _record_past_jobs(stack: Demo, backend: str, durations: list[int]) -> None:
    """Finished generations of ``durations`` seconds at the demo's size, in the demo's history."""
    code = (
        "import uuid\n"
        "from datetime import timedelta\n"
        "from django.utils import timezone\n"
        "from page_images.history import Generation, content_type_of\n"
        "from stories.models import Page\n"
        "page = Page.objects.order_by('-pk').first()\n"
        "now = timezone.now()\n"
        f"for i, seconds in enumerate({durations!r}):\n"
        "    start = now - timedelta(hours=1, minutes=i)\n"
        "    Generation.objects.create(content_type=content_type_of(page), object_id=str(page.pk),"
        " token=uuid.uuid4(), prompt='p', size='512x512', backend="
        f"{backend!r}, status='done', started_at=start, finished_at=start + "
        "timedelta(seconds=seconds))\n"
    )
    env = {**os.environ, "DEMO_STATE_DIR": str(stack.state)}
    for name in ("DJANGO_SETTINGS_MODULE", "DEMO_DATABASE", "PAGE_IMAGES_MODEL", "REDIS_URL"):
        env.pop(name, None)
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT / "example_project",
        env=env,
        check=True,
        capture_output=True,
    )


def test_without_previews_the_container_says_how_long_such_a_picture_usually_takes(
    not_streaming: Demo, browser: Any
) -> None:
    from playwright.sync_api import expect

    _record_past_jobs(
        not_streaming,
        "page_images.backends.litellm.LiteLLMBackend",
        [21, 23, 25, 27, 29, 31, 33, 35, 37, 39],
    )
    with editor_tab(browser, not_streaming.url, not_streaming) as tab:
        box = container(tab, 0)
        tab.evaluate(TIMING, 0)
        box.get_by_role("button", name="Generate image").click()
        expect(box.locator(".page-images-usual")).to_have_text("(usually 20–40 s)")
        doc_shot(box.locator("xpath=ancestor::article"), "usual-wait")
        box.locator("img.page-images-image").wait_for()
        tab.wait_for_function("() => window.__timing.picture !== null")
        assert tab.evaluate("window.__timing.previews") == []  # the model cannot stream
