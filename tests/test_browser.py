"""The example project in real headless Chromium, as an editor uses it.

The stack is started by example_project/run_demo.py itself (what `make demo` runs): migrations,
seed, uvicorn and a Celery worker on the filesystem transport, the LocalBackend and the file event
bus, in a temporary folder. Playwright drives Debian's Chromium (no browser download).
Screenshots of each state are saved under test-artifacts/browser/.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests import machine
from tests.machine import CHROMIUM, LAUNCH_ARGS

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "browser"

pytestmark = pytest.mark.slow


def _need_browser() -> None:
    if not os.path.exists(CHROMIUM):
        message = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
        if machine.CI:
            pytest.fail(message + ", and CI=true forbids skipping", pytrace=False)
        pytest.skip(message + ": skipped")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo stack on a free port, stopped with SIGTERM (Ctrl-C) at the end."""
    _need_browser()
    state = tmp_path_factory.mktemp("demo")
    port = _free_port()
    env = {**os.environ, "PORT": str(port), "DEMO_STATE_DIR": str(state), "DEMO_DELAY": "2.5"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    log = (state / "demo.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "example_project" / "run_demo.py")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while not machine.reachable("127.0.0.1", port, timeout=0.5):
            assert process.poll() is None, (state / "demo.log").read_text()
            assert time.monotonic() < deadline, "the demo did not start within 90 s"
            time.sleep(0.3)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(timeout=20) == 0, (state / "demo.log").read_text()
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, demo: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 1400})
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    tab.streams = []  # type: ignore[attr-defined]
    tab.on(
        "request",
        lambda request: "/page-images/events/" in request.url and tab.streams.append(request.url),
    )
    tab.goto(f"{demo}/accounts/login/?next=/")
    tab.fill("#id_username", "demo")
    tab.fill("#id_password", "demo")
    tab.click("button[type=submit]")
    tab.wait_for_url(f"{demo}/")
    yield tab
    context.close()


def shot(tab: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def container(tab: Any, article: int) -> Any:
    return tab.locator("article.page").nth(article).locator(".page-images")


def test_two_chips_become_pictures_without_a_reload_on_one_stream(page: Any) -> None:
    page.evaluate("window.__noReload = 'still here'")
    shot(page, "1-chips")
    first, second = container(page, 0), container(page, 1)
    first.get_by_role("button", name="Generate image").click()
    second.get_by_role("button", name="Generate image").click()
    page.locator(".page-images[data-state=generating]").first.wait_for()
    shot(page, "2-generating")
    first.locator("img.page-images-image").wait_for()
    container(page, 1).locator("img.page-images-image").wait_for()
    shot(page, "3-pictures")
    assert page.evaluate("window.__noReload") == "still here"
    for index in (0, 1):
        loaded = (
            container(page, index)
            .locator("img")
            .evaluate("img => img.complete && img.naturalWidth")
        )
        assert loaded == 512
    assert len(page.streams) == 1, page.streams


def test_a_generating_container_survives_a_reload(page: Any) -> None:
    target = container(page, 3)
    target.get_by_role("button", name="Generate image").click()
    target.locator(".page-images-generating").wait_for()
    page.reload()
    assert container(page, 3).get_attribute("data-state") == "generating"
    shot(page, "4-generating-after-reload")
    container(page, 3).locator("img.page-images-image").wait_for()


def test_a_refusal_shows_its_message_and_retry_works(page: Any, demo: str) -> None:
    refused = container(page, 5)  # "A forbidden door…": the demo backend refuses it
    refused.get_by_role("button", name="Generate image").click()
    error = container(page, 5).locator(".page-images-error")
    error.wait_for()
    assert "content policy" in error.inner_text()
    shot(page, "5-refused")
    # The editor fixes the text in the admin, comes back and clicks "Try again".
    article_id = page.locator("article.page").nth(5).get_attribute("id").removeprefix("page-")
    page.goto(f"{demo}/admin/stories/page/{article_id}/change/")
    page.fill("#id_image_text", "A wooden door at the back of the market, ivy around it")
    page.click("input[name=_save]")
    page.goto(f"{demo}/")
    container(page, 5).get_by_role("button", name="Try again").click()
    container(page, 5).locator("img.page-images-image").wait_for()
    shot(page, "6-retried")
