"""Target 6: from a click on the chip to the new picture loaded, in headless Chromium.

The demo stack as ``make demo`` starts it (``example_project/run_demo.py``: uvicorn and a Celery
worker with ``--pool=threads``), switched to Redis (``REDIS_URL``: broker and event bus) and to the
real LiteLLM backend pointed at the fake provider answering at once. The demo's processes run on
CPU 0, Chromium on CPU 1. A page shows ``CLICKS`` records with a chip; each click is timed inside
the page (``performance.now()``, a MutationObserver, the ``<img>``'s ``load`` event): to the spinner
(the trigger's round trip: the baseline) and to the picture (the claim, the queue, the job, the
event, the re-fetch and the image download).

A second run times the previews (issue 14, docs/previews.md): the provider takes ``PREVIEW_JOB``
seconds and streams its first partial at 30 % of them, the demo asks for one (``PREVIEWS = 1``),
and ``PREVIEW_CLICKS`` chips are clicked at once (the worker's four threads draw them together);
each is timed in the page to its first preview on the screen (loaded, then the next frame) and to
its picture. The target: the first preview by 35 % of the job's time.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.machine import CHROMIUM, LAUNCH_ARGS

from benchmarks.harness import (
    PYTHON,
    ROOT,
    SERVER_CPU,
    Check,
    Row,
    free_port,
    log,
    percentile,
    pin,
    stop_process,
    wait_port,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from benchmarks.harness import Services

DEMO = ROOT / "example_project"

SEED = """
import json
from stories.models import Page, Story
story = Story.objects.create(title="Benchmark story")
pages = [Page.objects.create(story=story, number=i + 1,
         image_text=f"A lighthouse keeper's cat, picture {i + 1}") for i in range(COUNT)]
print(json.dumps([page.pk for page in pages]))
"""

#: Runs in the page: click one chip, resolve with [ms to the spinner, ms to the loaded picture].
CLICK = """
(id) => new Promise((resolve, reject) => {
  const article = document.getElementById(id);
  const button = article.querySelector('.page-images button');
  let spinner = null;
  const timer = setTimeout(() => reject(new Error('no picture after 20 s for ' + id)), 20000);
  const done = (t) => { clearTimeout(timer); observer.disconnect(); resolve([spinner, t - t0]); };
  const look = () => {
    const box = article.querySelector('.page-images');
    if (spinner === null && box && box.dataset.state === 'generating') {
      spinner = performance.now() - t0;
    }
    const img = article.querySelector('img.page-images-image');
    if (img && !img.dataset.timed) {
      img.dataset.timed = '1';
      if (img.complete && img.naturalWidth) { done(performance.now()); }
      else { img.addEventListener('load', () => done(performance.now())); }
    }
    if (box && box.dataset.state === 'error') { reject(new Error(box.innerText)); }
  };
  const observer = new MutationObserver(look);
  observer.observe(article, {subtree: true, childList: true, attributes: true});
  const t0 = performance.now();
  button.click();
})
"""


#: The previews' run: the provider's seconds per picture, and when it sends its first partial.
PREVIEW_JOB = {True: 10.0, False: 20.0}
FIRST_PARTIAL = 0.3
PREVIEW_CLICKS = 4

#: Runs in the page: click the chips of ``ids`` together, resolve with [ms to the first preview on
#: the screen, ms to the picture on the screen] for each.
PREVIEWS = """
(ids) => Promise.all(ids.map(id => new Promise((resolve, reject) => {
  const article = document.getElementById(id);
  const times = {preview: null, picture: null};
  const timer = setTimeout(() => reject(new Error('no picture after 90 s for ' + id)), 90000);
  const shown = (key) => requestAnimationFrame(() => {
    if (times[key] !== null) { return; }
    times[key] = performance.now() - t0;
    if (key === 'picture') {
      clearTimeout(timer); observer.disconnect(); resolve([times.preview, times.picture]);
    }
  });
  const watch = (img, key) => {
    if (!img || img.dataset.timed) { return; }
    img.dataset.timed = '1';
    if (img.complete && img.naturalWidth) { shown(key); }
    else { img.addEventListener('load', () => shown(key)); }
  };
  const look = () => {
    watch(article.querySelector('img.page-images-preview'), 'preview');
    watch(article.querySelector('img.page-images-image'), 'picture');
    const box = article.querySelector('.page-images');
    if (box && box.dataset.state === 'error') { reject(new Error(box.innerText)); }
  };
  const observer = new MutationObserver(look);
  observer.observe(article, {subtree: true, childList: true});
  const t0 = performance.now();
  article.querySelector('.page-images button').click();
})))
"""


def _demo_env(
    services: Services, state: Path, port: int, api_base: str, previews: int = 0
) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BENCH_", "DJANGO_SETTINGS_MODULE", "CELERY_"))
    }
    env.update(
        {
            "PORT": str(port),
            "DEMO_STATE_DIR": str(state),
            "DEMO_EDITOR_TOOLS": "0",  # the one-click chip: the click this target times
            "REDIS_URL": f"redis://127.0.0.1:{services.redis_port}/1",
            "PAGE_IMAGES_MODEL": "openai/gpt-image-1",
            "PAGE_IMAGES_API_BASE": api_base,
            "PAGE_IMAGES_API_KEY": "sk-bench-not-a-key",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "DJANGO_SETTINGS_MODULE": "example.settings",
            "DEMO_PREVIEWS": str(previews),
        }
    )
    return env


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=DEMO, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stderr[-2000:]}")
    return done.stdout


@contextlib.contextmanager
def _editor_tab(url: str) -> Iterator[Any]:
    """Headless Chromium logged in as the demo's editor, on the front page, its stream open."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True
        )
        try:
            tab = browser.new_context(viewport={"width": 1100, "height": 1400}).new_page()
            tab.set_default_timeout(30_000)
            tab.goto(f"{url}/accounts/login/?next=/")
            tab.fill("#id_username", "demo")
            tab.fill("#id_password", "demo")
            tab.click("button[type=submit]")
            tab.wait_for_url(f"{url}/")
            tab.wait_for_load_state("networkidle")
            tab.wait_for_timeout(500)  # the event stream is open
            yield tab
        finally:
            browser.close()


def _clicks(url: str, pks: list[int]) -> list[list[float]]:
    with _editor_tab(url) as tab:
        results: list[list[float]] = []
        for pk in pks:
            results.append(tab.evaluate(CLICK, f"page-{pk}"))
            tab.wait_for_timeout(100)
        return results


def _preview_clicks(url: str, pks: list[int]) -> list[list[float]]:
    with _editor_tab(url) as tab:
        tab.evaluate(PREVIEWS, [f"page-{pks[0]}"])  # warms the worker's client, as above
        result: list[list[float]] = tab.evaluate(PREVIEWS, [f"page-{pk}" for pk in pks[1:]])
        return result


@contextlib.contextmanager
def _demo(services: Services, name: str, count: int, **provider: Any) -> Iterator[tuple[str, Any]]:
    """The demo stack on Redis with ``count`` pages of chips, the fake provider drawing
    (``provider``: its latency; ``previews``: PREVIEWS); yields its URL and the pages' keys."""
    from page_images.testing import FakeImageProvider

    previews = provider.pop("previews", 0)
    schedule = provider.pop("partial_schedule", None)
    state = Path(services.media_root).parent / name
    state.mkdir()
    port = free_port()
    with FakeImageProvider(image_size=(512, 512), **provider) as fake:
        if schedule:
            fake.partial_schedule = schedule
        env = _demo_env(services, state, port, fake.api_base, previews)
        _manage(env, "migrate", "--noinput", "--verbosity", "0")
        pks = json.loads(
            _manage(env, "shell", "-c", SEED.replace("COUNT", str(count))).splitlines()[-1]
        )
        log_file = (state / "demo.log").open("wb")
        demo = subprocess.Popen(
            [PYTHON, str(DEMO / "run_demo.py")],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        pin(SERVER_CPU, demo.pid)
        try:
            wait_port(port, 120, demo)
            time.sleep(3)  # the worker connects to Redis and imports LiteLLM after uvicorn
            yield f"http://127.0.0.1:{port}", pks
        except Exception:
            log_file.flush()
            print((state / "demo.log").read_text(errors="replace")[-3000:])
            raise
        finally:
            demo.send_signal(signal.SIGTERM)
            try:
                demo.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(demo.pid, signal.SIGKILL)
            stop_process(demo)
            log_file.close()


def _preview_rows(services: Services, quick: bool) -> list[Row]:
    job = PREVIEW_JOB[quick]
    log(f"6 click: previews, {PREVIEW_CLICKS} clicks at once, a {job:.0f} s job")
    with _demo(
        services,
        "demo-previews",
        PREVIEW_CLICKS + 1,
        latency=job,
        partial_schedule=(FIRST_PARTIAL,),
        previews=1,
    ) as (url, pks):
        results = _preview_clicks(url, pks)
    preview = [r[0] for r in results]
    picture = [r[1] for r in results]
    return [
        Row(
            "6 click",
            f"first preview on the screen, {job:.0f} s job, p50",
            percentile(preview, 50),
            "ms",
            percentile(picture, 50),
            "the same clicks' picture, p50",
            Check("ratio", "<=", 0.35, "≤ 0.35× (35 % of the job)", quick=1.4),
            note=(
                f"{len(results)} chips clicked at once; the fake provider draws each in "
                f"{job:.0f} s and streams its first partial at {FIRST_PARTIAL:.0%} of it "
                "(PREVIEWS = 1); timed in the page to the frame after each image loaded"
            ),
        )
    ]


def run(services: Services, quick: bool) -> list[Row]:
    if not os.path.exists(CHROMIUM):
        raise RuntimeError(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    clicks = 25 if quick else 50
    log(f"6 click: the demo stack on Redis, {clicks} clicks in headless Chromium")
    with _demo(services, "demo", clicks + 3, latency=0.0) as (url, pks):
        results = _clicks(url, pks)
    measured = results[3:]  # the first clicks warm the worker's LiteLLM client
    picture = [r[1] for r in measured]
    spinner = [r[0] for r in measured if r[0] is not None]
    target = "6 click"
    p50, p99 = percentile(picture, 50), percentile(picture, 99)
    base50, base99 = percentile(spinner, 50), percentile(spinner, 99)
    note = (
        f"{len(picture)} clicks after 3 to warm up; the baseline is the same clicks' time to the "
        "spinner (the trigger's round trip through the same stack)"
    )
    return [
        Row(
            target,
            "click to picture, p50",
            p50,
            "ms",
            base50,
            "click to spinner, p50",
            Check("figure", "<=", 250.0, "≤ 250 ms", quick=2.0),
            note=note,
        ),
        Row(
            target,
            "click to picture, p99",
            p99,
            "ms",
            base99,
            "click to spinner, p99",
            Check("figure", "<=", 500.0, "≤ 500 ms", quick=2.0),
        ),
        *_preview_rows(services, quick),
    ]
