"""The example project's admin in real headless Chromium: the live container in a page's change
form, and the "Generate images for the selected" action on the change list.

The same demo stack as tests/test_browser.py (example_project/run_demo.py: uvicorn, a Celery
worker, the file event bus). The screenshots it takes are the ones docs/admin.md shows.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.demo import Demo, chromium, demo_stack, editor_tab, need_browser

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.browser, pytest.mark.process]

DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The demo stack, as tests/test_browser.py starts it (a module of its own: its own stack)."""
    need_browser()
    with demo_stack(tmp_path_factory.mktemp("demo"), job_seconds=2.5) as running:
        yield running


@pytest.fixture
def tab(stack: Demo) -> Iterator[Any]:
    with chromium() as browser, editor_tab(browser, stack.url, stack) as opened:
        opened.set_viewport_size({"width": 1100, "height": 900})
        yield opened


def for_docs(tab: Any, name: str, selector: str) -> None:
    """A screenshot of one part of the page for the docs: PNG, only what the text talks about."""
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    tab.locator(selector).first.screenshot(path=str(DOCS_IMAGES / name))


def test_the_admin_generates_live_in_the_change_form_and_by_the_action(
    tab: Any, stack: Demo
) -> None:
    url = stack.url
    # The change form of a page without a picture: the chip sits after the image field.
    tab.goto(f"{url}/admin/stories/page/?image_state=empty")
    rows = tab.locator("#result_list tbody tr")
    assert rows.count() >= 3
    tab.locator("#result_list tbody tr th a").first.click()
    change_url = tab.url
    box = tab.locator(".field-page_image_container .page-images")
    assert box.get_attribute("data-state") == "empty"
    tab.evaluate("window.__noReload = 'still here'")
    box.get_by_role("button", name="Generate image").click()
    generating = tab.locator(".field-page_image_container .page-images[data-state=generating]")
    generating.wait_for()
    # The picture lands without a reload, and the chip's click did not save the record's form.
    picture = tab.locator(".field-page_image_container img.page-images-image")
    picture.wait_for()
    assert tab.evaluate("window.__noReload") == "still here"
    assert tab.url == change_url
    assert picture.evaluate("img => img.complete && img.naturalWidth") == 512
    for_docs(tab, "admin-change-form.png", "fieldset.module")
    # The change list: two pages selected, the action, then their thumbnails.
    tab.goto(f"{url}/admin/stories/page/?image_state=empty")
    checkboxes = tab.locator("#result_list tbody input.action-select")
    chosen = [checkboxes.nth(0), checkboxes.nth(1)]
    ids = [box.get_attribute("value") for box in chosen]
    for checkbox in chosen:
        checkbox.check()
    tab.select_option("select[name=action]", "generate_images")
    tab.click("button[name=index]")
    message = tab.locator("ul.messagelist li").first
    message.wait_for()
    assert message.inner_text().startswith("Queued 2 images.")
    deadline = time.monotonic() + 30
    while not all(stack.image_of(page_id) for page_id in ids):
        assert time.monotonic() < deadline, "the action's pictures did not land within 30 s"
        time.sleep(0.3)
    tab.goto(f"{url}/admin/stories/page/")
    thumbnails = tab.locator("#result_list img.page-images-admin-thumbnail")
    assert thumbnails.count() >= 3
    for_docs(tab, "admin-changelist.png", "#changelist")
