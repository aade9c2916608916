"""The editor's tools in real headless Chromium, on the demo as `make demo` shows it.

The demo stack runs with its editor's tools on (tests/support/demo.py ``tools=True``): the chip
opens the prompt panel, two candidates wait for a choice, a picture offers Regenerate and its
earlier pictures. Each test clicks through one of the issue's flows as an editor does, and takes
the screenshots docs/editing.md shows (docs/images/).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.reliability import case
from tests.support.demo import (
    Demo,
    container,
    demo_stack,
    doc_shot,
    editor_tab,
    need_browser,
    shot,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.browser, pytest.mark.process]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    need_browser()
    with demo_stack(tmp_path_factory.mktemp("demo"), job_seconds=1.5, tools=True) as running:
        yield running


@pytest.fixture
def page(browser: Any, stack: Demo) -> Iterator[Any]:
    with editor_tab(browser, stack.url, stack) as tab:
        yield tab


def article(tab: Any, index: int) -> Any:
    return tab.locator("article.page").nth(index)


def record_id(tab: Any, index: int) -> str:
    return str(article(tab, index).get_attribute("id")).removeprefix("page-")


def generate_from_panel(tab: Any, index: int, prompt: str | None = None) -> Any:
    """Open the panel with the chip (or Regenerate), optionally rewrite the prompt, send it."""
    box = container(tab, index)
    box.locator(".page-images-prompt").wait_for()
    if prompt is not None:
        box.locator(".page-images-prompt").fill(prompt)
    box.get_by_role("button", name="Generate 2 images").click()
    return container(tab, index)


@case(
    "editing",
    "The provider refuses the text an editor sent from the prompt panel",
    "The error says why; Try again reopens the panel with the refused text and the reason, the "
    "editor rewrites it there (no admin, no reload) and the new text is drawn.",
)
def test_edit_the_prompt_after_a_refusal_and_pick_a_candidate(page: Any, stack: Demo) -> None:
    page.evaluate("window.__noReload = 'still here'")
    refused = 5  # "A forbidden door…": the demo backend refuses it
    container(page, refused).get_by_role("button", name="Generate image").click()
    panel = container(page, refused)
    panel.locator(".page-images-prompt").wait_for()
    assert "forbidden door" in panel.locator(".page-images-prompt").input_value()
    assert panel.evaluate("box => document.activeElement.classList.contains('page-images-prompt')")
    panel.get_by_label("Style").select_option("ink")
    panel.get_by_label("3:2").check()
    doc_shot(article(page, refused), "editing-1-panel")
    generate_from_panel(page, refused)
    error = container(page, refused).locator(".page-images-error")
    error.wait_for()
    assert "content policy" in error.inner_text()
    container(page, refused).get_by_role("button", name="Try again").click()
    panel = container(page, refused)
    panel.locator(".page-images-prompt").wait_for()
    assert "content policy" in panel.locator(".page-images-error").inner_text()
    assert "forbidden door" in panel.locator(".page-images-prompt").input_value()
    doc_shot(article(page, refused), "editing-2-refused-panel")
    generate_from_panel(page, refused, "A wooden door at the back of the market, ivy around it")
    review = container(page, refused)
    review.locator(".page-images-candidate").nth(1).wait_for()
    assert review.get_attribute("data-state") == "review"
    thumbnails = review.locator("img.page-images-thumbnail")
    assert thumbnails.count() == 2
    sources = [thumbnails.nth(i).get_attribute("src") for i in range(2)]
    assert sources[0] != sources[1]
    # Each candidate's alt text (the demo's LocalBackend names its colours) follows it.
    review.locator('img.page-images-thumbnail[alt^="An abstract picture"]').nth(1).wait_for()
    alts = [thumbnails.nth(i).get_attribute("alt") for i in range(2)]
    # The ink style at 3:2: the backend drew 512x512's area at that shape.
    width, height = thumbnails.nth(0).evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert (width, height) == (640, 448)
    assert stack.image_of(record_id(page, refused)) == ""  # nothing is live before a choice
    doc_shot(article(page, refused), "editing-3-review")
    review.get_by_role("button", name="Use picture 2").click()
    picture = container(page, refused).locator("img.page-images-image")
    picture.wait_for()
    assert picture.get_attribute("src") == sources[1]
    assert picture.get_attribute("alt") == alts[1]  # accepted with the picture
    assert stack.image_of(record_id(page, refused)) in str(sources[1])
    assert page.evaluate("window.__noReload") == "still here"
    doc_shot(article(page, refused), "editing-4-accepted")


def test_regenerate_discard_then_accept_and_restore_the_previous_picture(page: Any) -> None:
    index = 0
    container(page, index).get_by_role("button", name="Generate image").click()
    generate_from_panel(page, index)
    container(page, index).get_by_role("button", name="Use picture 1").click()
    first = container(page, index).locator("img.page-images-image")
    first.wait_for()
    first_src = first.get_attribute("src")

    # Regenerate, then discard: the live picture never changed.
    container(page, index).get_by_role("button", name="Regenerate").click()
    generate_from_panel(page, index)
    container(page, index).locator(".page-images-candidate").nth(1).wait_for()
    assert container(page, index).locator("img.page-images-image").count() == 0
    container(page, index).get_by_role("button", name="Discard").click()
    back = container(page, index).locator("img.page-images-image")
    back.wait_for()
    assert back.get_attribute("src") == first_src

    # Regenerate and accept: a new picture, and the first one is among the earlier pictures.
    container(page, index).get_by_role("button", name="Regenerate").click()
    generate_from_panel(page, index)
    container(page, index).get_by_role("button", name="Use picture 2").click()
    second = container(page, index).locator("img.page-images-image")
    second.wait_for()
    assert second.get_attribute("src") != first_src
    container(page, index).get_by_role("button", name="Earlier pictures").click()
    earlier = container(page, index).locator("img.page-images-thumbnail")
    earlier.first.wait_for()
    assert earlier.count() == 1
    assert earlier.first.get_attribute("src") == first_src
    doc_shot(article(page, index), "editing-5-earlier")
    container(page, index).get_by_role("button", name="Restore earlier picture 1").click()
    restored = container(page, index).locator("img.page-images-image")
    restored.wait_for()
    assert restored.get_attribute("src") == first_src
    shot(page, "editing-restored")


@case(
    "editing",
    "An editor clicks past their daily quota of pictures",
    "The panel said how many were left; the click is refused with the reason where they clicked "
    "(429), and nothing is queued or paid for.",
)
def test_the_panel_counts_down_the_quota_and_a_click_past_it_is_refused(
    browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    state = tmp_path_factory.mktemp("quota")
    with (
        demo_stack(state, job_seconds=0.3, tools=True, daily_images=4) as quota_stack,
        editor_tab(browser, quota_stack.url, quota_stack) as tab,
    ):
        for index, left in ((0, "4 of 4"), (1, "2 of 4")):
            container(tab, index).get_by_role("button", name="Generate image").click()
            quota = container(tab, index).locator(".page-images-quota")
            quota.wait_for()
            assert left in quota.inner_text()
            generate_from_panel(tab, index)
            container(tab, index).locator(".page-images-candidate").nth(1).wait_for()
        container(tab, 2).get_by_role("button", name="Generate image").click()
        assert "0 of 4" in container(tab, 2).locator(".page-images-quota").inner_text()
        generate_from_panel(tab, 2)
        refusal = container(tab, 2).locator(".page-images-message")
        refusal.wait_for()
        assert "4 images" in refusal.inner_text()
        # Said in the page's one live region, as every change of a container is.
        tab.wait_for_function(
            "document.querySelector('.page-images-live').textContent.includes('4 images')"
        )
        assert container(tab, 2).get_attribute("data-state") == "empty"
        doc_shot(article(tab, 2), "editing-6-quota")
        assert quota_stack.image_of(record_id(tab, 2)) == ""


def test_the_editors_tools_work_in_the_admins_change_form(page: Any, stack: Demo) -> None:
    # The same container in the admin: the prompt panel, the review of two candidates, the
    # choice, then Regenerate and Discard; the change form is never saved or reloaded.
    index = 4
    url = f"{stack.url}/admin/stories/page/{record_id(page, index)}/change/"
    page.goto(url)
    page.evaluate("window.__noReload = 'still here'")

    def box() -> Any:
        return page.locator(".field-page_image_container .page-images")

    box().get_by_role("button", name="Generate image").click()
    box().locator(".page-images-prompt").wait_for()
    box().get_by_label("Style").select_option("poster")
    box().get_by_role("button", name="Generate 2 images").click()
    box().locator(".page-images-candidate").nth(1).wait_for()
    doc_shot(page.locator("fieldset.module").first, "editing-7-admin-review")
    box().get_by_role("button", name="Use picture 2").click()
    picture = box().locator("img.page-images-image")
    picture.wait_for()
    live = picture.get_attribute("src")
    assert stack.image_of(record_id_from(url)) in str(live)
    box().get_by_role("button", name="Regenerate").click()
    box().get_by_role("button", name="Generate 2 images").click()
    box().locator(".page-images-candidate").nth(1).wait_for()
    box().get_by_role("button", name="Discard").click()
    box().locator("img.page-images-image").wait_for()
    assert box().locator("img.page-images-image").get_attribute("src") == live
    assert page.evaluate("window.__noReload") == "still here"
    assert page.url == url


def record_id_from(change_url: str) -> str:
    return change_url.rstrip("/").split("/")[-2]
