"""The example project in real headless Chromium, as an editor uses it.

The stack is started by example_project/run_demo.py itself (what `make demo` runs): migrations,
seed, uvicorn and a Celery worker on the filesystem transport, the LocalBackend and the file event
bus, in a temporary folder (tests/support/demo.py). Playwright drives Debian's Chromium (no browser
download). Screenshots of each state are saved under test-artifacts/browser/.
"""

from __future__ import annotations

import time
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
    """The demo stack on a free port, stopped with SIGTERM (Ctrl-C) at the end."""
    need_browser()
    with demo_stack(tmp_path_factory.mktemp("demo"), job_seconds=2.5) as running:
        yield running


@pytest.fixture
def demo(stack: Demo) -> str:
    return stack.url


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
    assert first.locator(".page-images-label").inner_text() == "AI-generated"  # AI_LABEL
    # The file the browser was served says so too, in XMP (PROVENANCE): docs/provenance.md.
    source = first.locator("img").evaluate("img => img.currentSrc")
    served = page.request.get(source).body()
    assert b"<Iptc4xmpExt:DigitalSourceType>" in served
    assert b"digitalsourcetype/trainedAlgorithmicMedia" in served
    doc_shot(first.locator("xpath=ancestor::article"), "provenance-label")
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


@case(
    "worker",
    "An editor clicks Cancel in Chromium while the job runs",
    "The chip is back at once; the job's picture is discarded and never shown or stored.",
)
def test_a_cancelled_job_gives_the_chip_back_and_its_picture_never_lands(
    page: Any, stack: Demo
) -> None:
    target = container(page, 2)
    article_id = page.locator("article.page").nth(2).get_attribute("id").removeprefix("page-")
    target.get_by_role("button", name="Generate image").click()
    container(page, 2).get_by_role("button", name="Cancel").click()
    container(page, 2).get_by_role("button", name="Generate image").wait_for()
    shot(page, "7-cancelled")
    # The job runs on to its end (2.5 s); its picture is discarded, and the page stays as it is.
    deadline = time.monotonic() + 20
    # A job cancelled before it started is logged under the model's label (it never loaded the
    # record, whose channel is "stories"); one cancelled while running, under the channel.
    ends = (
        f"stories:{article_id} lost its claim while running",
        f"stories.page:{article_id} no longer holds its claim",
        f"stories:{article_id} no longer holds its claim",
    )
    while not any(end in stack.log_text() for end in ends):
        assert time.monotonic() < deadline, "the cancelled job did not end within 20 s"
        time.sleep(0.2)
    page.wait_for_timeout(500)  # an event, had one been sent, would have landed by now
    assert container(page, 2).get_attribute("data-state") == "empty"
    assert container(page, 2).locator("img").count() == 0
    assert stack.image_of(article_id) == ""


@case(
    "requests",
    "A proxy or another URL pattern answers the click with its own error page (502)",
    "The container says the request failed (role=alert), in Chromium; the foreign page is not "
    "swapped in.",
)
def test_a_click_that_a_foreign_page_answers_says_it_failed(page: Any) -> None:
    # A proxy in front of the site answers the click with its own error page (a 502): the editor
    # is told, where they clicked, instead of a click that does nothing. (A 404 from a URL pattern
    # that shadows ours is shown the same way with DEBUG=False; with DEBUG=True, as in the demo,
    # django-htmx's debug handler shows Django's 404 page instead, which names the URL patterns.)
    page.route(
        "**/page-images/generate/",
        lambda route: route.fulfill(
            status=502, content_type="text/html", body="<h1>Bad Gateway</h1>"
        ),
    )
    target = container(page, 4)
    target.get_by_role("button", name="Generate image").click()
    failed = container(page, 4).locator(".page-images-failed")
    failed.wait_for()
    assert failed.get_attribute("role") == "alert"
    assert "The request failed" in failed.inner_text()
    assert "Bad Gateway" not in page.locator("body").inner_text()
    shot(page, "8-foreign-502")


def test_make_demo_says_its_address_last_and_stops_at_once_with_a_tab_open(
    browser: Any, tmp_path: Any
) -> None:
    # The address used to be printed before the worker's banner, which scrolled it away; Ctrl-C
    # used to wait about 12 s for an open tab's event stream to end.
    with demo_stack(tmp_path, job_seconds=1) as own, editor_tab(browser, own.url, own) as tab:
        log = own.log_text()
        assert log.rindex(" ready.") < log.rindex(f"django-page-images demo: {own.url}/")
        assert tab.streams, "the tab opened no event stream"
        took = own.stop()
        assert took < 5, f"the demo took {took:.1f} s to stop with a tab open"


# Editors with any ability: the keyboard alone, a screen reader's live region, the wait counted,
# and a page that does not move. Each test works on pages of its own (Demo.add_page), so the
# order of the tests does not matter.


def live_text(tab: Any) -> str:
    """What the page's one live region says now."""
    return str(tab.evaluate("document.querySelector('.page-images-live').textContent"))


def tab_to(tab: Any, target: Any, most: int = 60) -> int:
    """Press Tab until ``target`` has the focus; how many presses it took."""
    for presses in range(1, most + 1):
        tab.keyboard.press("Tab")
        if target.evaluate("element => element === document.activeElement"):
            return presses
    raise AssertionError(f"{most} presses of Tab never reached {target}")


def own_page(tab: Any, stack: Demo, text: str) -> Any:
    """A page of the test's own, on the front page reloaded: its container's locator."""
    page_id = stack.add_page(text)
    tab.reload()
    return tab.locator(f"#page-{page_id} .page-images")


def test_an_editor_with_the_keyboard_alone_generates_cancels_and_hears_each_change(
    page: Any, stack: Demo
) -> None:
    from playwright.sync_api import expect

    box = own_page(page, stack, "A kite over the dunes, for the keyboard alone")
    assert page.locator(".page-images-live").count() == 1
    assert live_text(page) == "", "nothing is said when the page loads"
    chip = box.get_by_role("button", name="Generate image")
    tab_to(page, chip)
    page.keyboard.press("Enter")
    # The chip gave way to Cancel, which has the focus; the change was said.
    cancel = box.get_by_role("button", name="Cancel")
    expect(cancel).to_be_focused()
    page.wait_for_function("document.querySelector('.page-images-live').textContent.trim()")
    # (Then the usual wait, once enough jobs have finished here: tests/test_estimates.py.)
    assert live_text(page).startswith("Generating image…"), live_text(page)
    shot(page, "9-keyboard-generating")
    # The wait counts, second by second, in words the page's language gives.
    elapsed = box.locator(".page-images-elapsed")
    first = elapsed.inner_text()
    page.wait_for_function(
        "([box, first]) => { const e = box.querySelector('.page-images-elapsed');"
        " return e && e.textContent !== first; }",
        arg=[box.element_handle(), first],
        timeout=2500,
    )
    assert first.startswith(("queued", "started")), first
    # Cancel, with the keyboard: the chip is back and has the focus.
    page.keyboard.press("Enter")
    expect(chip).to_be_focused()
    page.wait_for_function(
        "document.querySelector('.page-images-live').textContent === 'Image generation cancelled'"
    )
    # Generate again, and watch the page's height while the picture lands.
    page.keyboard.press("Enter")
    expect(cancel).to_be_focused()
    # The container is the picture's box already (the demo's SIZE is 512x512). Measured in one
    # step on the container the page holds then: the stream's re-fetch may replace it at any
    # moment, and a replaced element measures 0 x 0.
    article = box.locator("xpath=ancestor::article")
    width, height = article.evaluate(
        """article => new Promise(resolve => {
            const measure = () => {
                const box = article.querySelector('.page-images.page-images-boxed');
                if (!box) return requestAnimationFrame(measure);
                const rect = box.getBoundingClientRect();
                resolve([rect.width, rect.height]);
            };
            measure();
        })"""
    )
    assert abs(width - 512) <= 1, width
    assert abs(height - 512) <= 1, height
    doc_shot(article, "accessibility-1-generating")
    # Each frame until the picture has loaded: where the picture's place is on the page (the
    # box while it waits, the box held while the picture loads, then the picture itself).
    page.evaluate(
        """article => {
            window.__places = [];
            window.__frames = [];
            const sample = () => {
                const box = article.querySelector('.page-images');
                const img = box && box.querySelector('img.page-images-image');
                const rect = (img && img.complete ? img : box).getBoundingClientRect();
                window.__places.push([Math.round(rect.top), Math.round(rect.bottom)]);
                // What each frame saw, for the message if the place moved.
                window.__frames.push([img && img.complete, img && img.naturalWidth,
                                      box.style.minHeight, box.className]);
                if (!window.__stopSampling) requestAnimationFrame(sample);
            };
            sample();
        }""",
        article.element_handle(),
    )
    image = box.locator("img.page-images-image")
    image.wait_for()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
    )
    page.wait_for_timeout(200)  # a few frames after it loaded
    places = {tuple(place) for place in page.evaluate("window.__stopSampling = true; __places")}
    # The picture lands exactly in the box that waited for it: nothing above or inside moved.
    # (What goes with a picture, such as the demo's "AI-generated" label, follows below it.)
    frames = sorted({tuple(frame) for frame in page.evaluate("window.__frames")}, key=str)
    assert len(places) == 1, f"the picture's place moved: {sorted(places)}, frames: {frames}"
    # The picture has the focus now (focusable by script only: no tab stop for anyone), and the
    # live region, the same one all along, said so.
    expect(image).to_be_focused()
    assert image.get_attribute("tabindex") == "-1"
    page.wait_for_function(
        "document.querySelector('.page-images-live').textContent === 'Image ready'"
    )
    assert page.locator(".page-images-live").count() == 1
    shot(page, "10-keyboard-ready")
    doc_shot(article, "accessibility-2-ready")


@case(
    "editing",
    "An editor uses a control the moment it arrives, before htmx has settled the new container "
    "(20 ms, far longer on a busy page)",
    "The control answers through htmx like any other: the page does not reload, the job is "
    "cancelled and the chip comes back, in Chromium.",
)
def test_a_control_used_the_moment_it_arrives_answers_without_a_reload(
    page: Any, stack: Demo
) -> None:
    from playwright.sync_api import expect

    box = own_page(page, stack, "A heron at dawn, cancelled the moment it can be")
    # A page too busy to settle for two seconds: the window is wide open.
    page.evaluate("window.__sameDocument = true; htmx.config.defaultSettleDelay = 2000")
    box.get_by_role("button", name="Generate image").click()
    box.get_by_role("button", name="Cancel").click()
    expect(box.get_by_role("button", name="Generate image")).to_be_visible()
    assert page.evaluate("window.__sameDocument === true"), "the click reloaded the page"
    expect(box).to_have_attribute("data-state", "empty")


def test_the_wait_says_queued_then_started_as_the_worker_takes_the_job(
    page: Any, stack: Demo
) -> None:
    box = own_page(page, stack, "A lighthouse at dusk, first queued, then drawn")
    # Each phase the wait names, in order, from the click to the picture: the container is
    # replaced by each re-fetch, so its article is watched (the words before the count are the
    # <time>'s data-page-images-text, "queued {since} ago" or "started {since} ago").
    box.locator("xpath=ancestor::article").evaluate(
        """article => {
            window.__phases = [];
            const note = () => {
                const time = article.querySelector('.page-images-elapsed');
                const phase = time && time.getAttribute('data-page-images-text').split(' ')[0];
                if (phase && window.__phases[window.__phases.length - 1] !== phase) {
                    window.__phases.push(phase);
                }
            };
            new MutationObserver(note).observe(article, {subtree: true, childList: true});
        }"""
    )
    box.get_by_role("button", name="Generate image").click()
    box.locator("img.page-images-image").wait_for()
    phases = page.evaluate("window.__phases")
    # The worker polls its queue folder about once a second, so the click's own answer says
    # "queued" (a worker that took the job within those milliseconds would make it "started"
    # at once); either way, what the page said last before the picture is "started".
    assert phases in (["queued", "started"], ["started"]), phases


def test_a_picture_landing_leaves_the_focus_where_the_editor_took_it(
    page: Any, stack: Demo
) -> None:
    from playwright.sync_api import expect

    box = own_page(page, stack, "A lantern on a jetty, landing while the editor is elsewhere")
    box.get_by_role("button", name="Generate image").click()
    box.get_by_role("button", name="Cancel").wait_for()
    elsewhere = page.get_by_role("link", name="Admin")
    elsewhere.focus()
    box.locator("img.page-images-image").wait_for()
    page.wait_for_function(
        "document.querySelector('.page-images-live').textContent === 'Image ready'"
    )
    expect(elsewhere).to_be_focused()


@case(
    "provider",
    "The provider refuses the prompt while an editor waits with the keyboard and a screen reader",
    "The refusal is said in the page's live region and stays visible in the container; the "
    "focus moves from Cancel to Try again, in Chromium.",
)
def test_a_refusal_is_said_and_the_focus_moves_to_try_again(page: Any, stack: Demo) -> None:
    from playwright.sync_api import expect

    box = own_page(page, stack, "A forbidden gate, refused for the keyboard test")
    tab_to(page, box.get_by_role("button", name="Generate image"))
    page.keyboard.press("Enter")
    expect(box.get_by_role("button", name="Cancel")).to_be_focused()
    error = box.locator(".page-images-error")
    error.wait_for()
    expect(box.get_by_role("button", name="Try again")).to_be_focused()
    assert "content policy" in error.inner_text()
    page.wait_for_function(
        "text => document.querySelector('.page-images-live').textContent === text",
        arg=error.inner_text().strip(),
    )
    shot(page, "11-keyboard-refused")


def test_a_new_picture_gets_alt_text_that_the_editor_can_change(
    page: Any, demo: str, stack: Demo
) -> None:
    box = own_page(page, stack, "A kite over the market square, red tail streaming")
    box.get_by_role("button", name="Generate image").click()
    # The picture first, then (another event, another fetch) the alt text LocalBackend wrote.
    described = box.locator('img.page-images-image[alt^="An abstract picture"]')
    described.wait_for()
    alt = described.get_attribute("alt")
    assert "kite" not in alt  # never the prompt, which the page prints just above
    shot(page, "9-alt-text")
    page_id = str(box.get_attribute("id")).rsplit("-", 1)[-1]
    page.goto(f"{demo}/admin/stories/page/{page_id}/change/")
    assert page.input_value("#id_image_alt") == alt
    doc_shot(page.locator(".form-row.field-image_alt"), "alt-text-admin")
    page.fill("#id_image_alt", "A red kite high above the striped awnings")
    shot(page, "10-alt-text-admin")
    page.click("input[name=_save]")
    page.goto(f"{demo}/")
    img = page.locator(f"#page-{page_id} img.page-images-image")
    assert img.get_attribute("alt") == "A red kite high above the striped awnings"
