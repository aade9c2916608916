"""The example project in real headless Chromium, as an editor uses it.

The stack is started by example_project/run_demo.py itself (what `make demo` runs): migrations,
seed, uvicorn and a Celery worker on the filesystem transport, the LocalBackend and the file event
bus, in a temporary folder (tests/support/demo.py). Playwright drives Debian's Chromium (no browser
download). Screenshots of each state are saved under test-artifacts/browser/.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.support.demo import (
    Demo,
    chromium,
    container,
    demo_stack,
    editor_tab,
    need_browser,
    shot,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.browser, pytest.mark.process]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The demo stack on a free port, stopped with SIGTERM (Ctrl-C) at the end."""
    need_browser()
    with demo_stack(tmp_path_factory.mktemp("demo"), job_seconds=2.5) as running:
        yield running


@pytest.fixture
def demo(stack: Demo) -> str:
    return stack.url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Any, stack: Demo) -> Iterator[Any]:
    with editor_tab(browser, stack.url, stack) as tab:
        yield tab


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
