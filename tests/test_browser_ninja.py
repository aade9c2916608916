"""The example project built the django-ninja and django-cotton way, in real headless Chromium.

The front page is drawn with the cotton components and the chip posts to the ninja router
(DEMO_COMPONENTS=cotton, DEMO_API=ninja); the router answers the click with 204 and the container
comes by the page's event stream, as the picture does after it: uvicorn, a Celery worker, the
LocalBackend and the file event bus of `make demo` (tests/support/demo.py).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.demo import Demo, container, demo_stack, editor_tab, need_browser, shot

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.browser, pytest.mark.process]

NINJA_TRIGGER = "/api/page-images/jobs/image/generate"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    need_browser()
    with demo_stack(
        tmp_path_factory.mktemp("demo-ninja"), job_seconds=1.5, api="ninja", components="cotton"
    ) as running:
        yield running


@pytest.fixture(scope="module")
def tools_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The same, with the editor's tools on (prompt panel, two candidates to review)."""
    need_browser()
    with demo_stack(
        tmp_path_factory.mktemp("demo-ninja-tools"),
        job_seconds=1.5,
        api="ninja",
        components="cotton",
        tools=True,
    ) as running:
        yield running


@contextmanager
def ninja_tab(browser: Any, stack: Demo) -> Iterator[Any]:
    """An editor's tab that notes the status of each answer the router gives a click."""
    with editor_tab(browser, stack.url, stack) as tab:
        tab.clicks = []

        def note(answer: Any) -> None:
            if answer.request.method == "POST" and NINJA_TRIGGER in answer.url:
                tab.clicks.append(answer.status)

        tab.on("response", note)
        assert tab.locator("[data-components=cotton]").count() > 0  # drawn by the components
        yield tab


@pytest.fixture
def page(browser: Any, stack: Demo) -> Iterator[Any]:
    with ninja_tab(browser, stack) as tab:
        yield tab


def test_the_chip_posts_to_the_router_and_the_picture_comes_by_the_stream(page: Any) -> None:
    page.evaluate("window.__noReload = 'still here'")
    target = container(page, 0)
    assert f'hx-post="{NINJA_TRIGGER}"' in target.evaluate("box => box.outerHTML")
    target.get_by_role("button", name="Generate image").click()
    # 204: the click's answer swaps nothing; the stream's event re-fetches the container.
    container(page, 0).locator(".page-images-generating").wait_for()
    shot(page, "ninja-1-generating")
    container(page, 0).locator("img.page-images-image").wait_for()
    shot(page, "ninja-2-picture")
    assert page.clicks == [204]
    assert page.evaluate("window.__noReload") == "still here"
    assert len(page.streams) == 1, page.streams


def test_a_refused_job_shows_its_error_by_the_stream(page: Any) -> None:
    refused = container(page, 5)  # "A forbidden door…": the demo backend refuses it
    refused.get_by_role("button", name="Generate image").click()
    error = container(page, 5).locator(".page-images-error")
    error.wait_for()
    assert "content policy" in error.inner_text()
    assert page.clicks == [204]


def test_the_prompt_panel_sends_to_the_router_and_the_candidates_come_by_the_stream(
    browser: Any, tools_stack: Demo
) -> None:
    with ninja_tab(browser, tools_stack) as tab:
        box = container(tab, 1)
        box.get_by_role("button", name="Generate image").click()  # opens the panel (a GET)
        box = container(tab, 1)
        box.locator(".page-images-prompt").fill("A lighthouse at dusk, gulls around it")
        box.get_by_role("button", name="Generate 2 images").click()
        # The panel's answer is the container itself (200); the candidates come by the stream.
        container(tab, 1).locator(".page-images-candidate").nth(1).wait_for()
        shot(tab, "ninja-3-review")
        assert tab.clicks == [200]
        container(tab, 1).get_by_role("button", name="Use picture 1").click()
        container(tab, 1).locator("img.page-images-image").wait_for()
