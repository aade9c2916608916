"""The demo stack and headless Chromium, for the tests that use the site as an editor does.

The stack is started by example_project/run_demo.py itself (what `make demo` runs): migrations,
seed, uvicorn and a Celery worker, the LocalBackend, in a folder of the test's own, on a free
port; without ``redis_url`` on the filesystem transport and the file event bus, with it on Redis
for both. Playwright drives Debian's Chromium (no browser download). Screenshots go under
test-artifacts/browser/.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests import machine
from tests.servers import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
#: The demo must answer this soon after it was started (migrations and seed included).
START_SECONDS = 90


@dataclass
class Demo:
    url: str
    state: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> float:
        """SIGTERM, as Ctrl-C: require a clean exit; return the seconds it took."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            assert self.process.wait(timeout=30) == 0, self.log_text()
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return time.monotonic() - started

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def add_page(self, text: str) -> str:
        """A new page with ``text`` and no picture, after every other one; its id.

        A copy of the last page's row with a few columns changed, so that it needs no list of the
        columns (the model's and the mixin's may grow): for a test that needs a record no other
        test of the stack touches.
        """
        with contextlib.closing(sqlite3.connect(self.state / "db.sqlite3", timeout=20)) as db:
            names = [row[1] for row in db.execute("PRAGMA table_info(stories_page)")]
            fresh = {
                "number": "(SELECT MAX(number) + 1 FROM stories_page)",
                "image_text": "?",
                "image": "''",
                "image_error": "''",
                "image_generating": "0",
                "image_review": "0",
                "image_alt": "''",
                "image_claimed_at": "NULL",
                "image_started_at": "NULL",
                "image_claim_token": "NULL",
            }
            kept = [name for name in names if name != "id"]
            values = ", ".join(fresh.get(name, name) for name in kept)
            cursor = db.execute(
                f"INSERT INTO stories_page ({', '.join(kept)}) "
                f"SELECT {values} FROM stories_page ORDER BY story_id DESC, number DESC LIMIT 1",
                (text,),
            )
            db.commit()
            return str(cursor.lastrowid)

    def image_of(self, page_id: str) -> str:
        """The page's stored image name, read straight from the demo's database."""
        with contextlib.closing(sqlite3.connect(self.state / "db.sqlite3", timeout=20)) as db:
            row = db.execute("SELECT image FROM stories_page WHERE id = ?", (page_id,)).fetchone()
        return str(row[0] or "") if row else ""


def need_browser() -> None:
    """Skip (laptop) or fail (CI) when Debian's Chromium is missing."""
    if not os.path.exists(machine.CHROMIUM):
        message = f"Chromium is not installed at {machine.CHROMIUM} (apt-get install chromium)"
        if machine.CI:
            pytest.fail(message + ", and CI=true forbids skipping", pytrace=False)
        pytest.skip(message + ": skipped")


@contextlib.contextmanager
def demo_stack(
    state: Path,
    *,
    job_seconds: float,
    redis_url: str | None = None,
    tools: bool = False,
    daily_images: int | None = None,
    api: str | None = None,
    components: str | None = None,
    previews: int = 0,
    provider: tuple[str, str] | None = None,
) -> Iterator[Demo]:
    """Run the demo in ``state`` until the block ends (or ``Demo.stop()``); stop it with SIGTERM
    (Ctrl-C), as a person does, and require a clean exit. The LocalBackend takes
    ``job_seconds`` per picture. ``tools`` turns on the editor's tools (the prompt panel, review
    of two candidates, Regenerate), which ``make demo`` shows; without it the plain chip.
    ``daily_images`` is the editor's quota of pictures a day with the tools on. ``api="ninja"``
    sends the chip's click to the django-ninja router, ``components="cotton"`` draws the front
    page with the django-cotton components (example/settings.py)."""
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "DEMO_STATE_DIR": str(state),
        "DEMO_DELAY": str(job_seconds),
        "DEMO_EDITOR_TOOLS": "1" if tools else "0",
        "DEMO_PREVIEWS": str(previews),
    }
    if daily_images is not None:
        env["DEMO_DAILY_IMAGES"] = str(daily_images)
    for name in (
        "DJANGO_SETTINGS_MODULE",
        "DEMO_DATABASE",
        "PAGE_IMAGES_MODEL",
        "REDIS_URL",
        "DEMO_API",
        "DEMO_COMPONENTS",
        "PAGE_IMAGES_API_BASE",
        "PAGE_IMAGES_API_KEY",
        "PAGE_IMAGES_ALT_MODEL",
    ):
        env.pop(name, None)
    for name, value in (("DEMO_API", api), ("DEMO_COMPONENTS", components)):
        if value:
            env[name] = value
    if redis_url:
        env["REDIS_URL"] = redis_url
    if provider:
        env["PAGE_IMAGES_MODEL"], env["PAGE_IMAGES_API_BASE"] = provider
        env["PAGE_IMAGES_API_KEY"] = "sk-fake-not-a-key"
        env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    demo = Demo(f"http://127.0.0.1:{port}", state, state / "demo.log")
    with demo.log.open("wb") as log:
        demo.process = process = subprocess.Popen(
            [sys.executable, str(ROOT / "example_project" / "run_demo.py")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_SECONDS
        # Both halves up: uvicorn answers, and the worker has said " ready.".
        while not (
            machine.reachable("127.0.0.1", port, timeout=0.5)
            and b" ready." in demo.log.read_bytes()
        ):
            assert process.poll() is None, demo.log_text()
            assert time.monotonic() < deadline, f"the demo did not start within {START_SECONDS} s"
            time.sleep(0.3)
        yield demo
    finally:
        if process.poll() is None:
            demo.stop()


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Headless Debian Chromium under Playwright, closed at the end."""
    need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=machine.CHROMIUM, args=machine.LAUNCH_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def editor_tab(
    browser: Any, url: str, stack: Demo | None = None, *, locale: str | None = None
) -> Iterator[Any]:
    """A tab of its own, logged in as the demo's editor, on the front page (every story).
    ``locale`` ("de-DE") is the browser's language, sent as Accept-Language.

    ``tab.streams`` lists the event-stream requests: one, unless the stream had to reopen.
    ``tab.evidence()`` is what a failed test reports (tests/conftest.py): the browser's console
    and requests, the containers' markup and the end of the stack's log.
    """
    language = {"locale": locale} if locale else {}
    context = browser.new_context(viewport={"width": 1100, "height": 1400}, **language)
    try:
        tab: Any = context.new_page()
        tab.set_default_timeout(20_000)
        tab.streams = []
        seen: list[str] = []

        def on_request(request: Any) -> None:
            seen.append(f"{time.strftime('%H:%M:%S')} {request.method} {request.url}")
            if "/page-images/events/" in request.url:
                tab.streams.append(request.url)

        def evidence() -> str:
            boxes = tab.eval_on_selector_all(".page-images", "all => all.map(b => b.outerHTML)")
            parts = [
                "requests:\n" + "\n".join(seen[-40:]),
                "console:\n" + "\n".join(console[-40:]),
                "containers:\n" + "\n".join(boxes),
            ]
            if stack is not None:
                parts.append("stack log (end):\n" + stack.log_text()[-6000:])
            return "\n\n".join(parts)

        console: list[str] = []
        tab.on("request", on_request)
        tab.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
        tab.evidence = evidence
        tab.goto(f"{url}/accounts/login/?next=/")
        tab.fill("#id_username", "demo")
        tab.fill("#id_password", "demo")
        tab.click("button[type=submit]")
        tab.wait_for_url(f"{url}/")
        yield tab
    finally:
        context.close()


def shot(tab: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


#: Where the screenshots the docs show are written, by the tests that click through each step.
DOC_IMAGES = ROOT / "docs" / "images"


def doc_shot(element: Any, name: str) -> None:
    """A screenshot of one element (an article with its container) for the docs."""
    DOC_IMAGES.mkdir(parents=True, exist_ok=True)
    element.screenshot(path=str(DOC_IMAGES / f"{name}.png"))


def container(tab: Any, article: int) -> Any:
    """The image container of the ``article``-th page on the front page."""
    return tab.locator("article.page").nth(article).locator(".page-images")
