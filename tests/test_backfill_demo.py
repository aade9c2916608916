"""The backfill command against the running demo, as an operator runs it: a real worker in another
process, the filesystem broker, Ctrl-C (SIGINT) in the middle, and a second run that goes on;
then the pages as an editor sees them in Chromium.

tests/test_commands.py proves the same in-process with the jobs held in the test's hands; this
proves it with the processes and the signal a terminal really sends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.demo import ROOT, Demo, demo_stack, doc_shot, editor_tab, need_browser

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.process, pytest.mark.worker, pytest.mark.browser]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with demo_stack(tmp_path_factory.mktemp("demo"), job_seconds=2.5) as running:
        yield running


def backfill(stack: Demo, *args: str) -> subprocess.Popen[str]:
    # The demo's settings as its stack has them (the plain chip): the command builds what each
    # generation asks for (variants, review) in its own process, from its own settings.
    env = {**os.environ, "DEMO_STATE_DIR": str(stack.state), "DEMO_EDITOR_TOOLS": "0"}
    for name in ("DJANGO_SETTINGS_MODULE", "DEMO_DATABASE", "PAGE_IMAGES_MODEL", "REDIS_URL"):
        env.pop(name, None)
    return subprocess.Popen(
        [sys.executable, "manage.py", "page_images_backfill", "stories.Page", *args],
        cwd=ROOT / "example_project",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def generations(stack: Demo) -> list[tuple[str, str]]:
    """(record id, status) of every history row, read straight from the demo's database."""
    with contextlib.closing(sqlite3.connect(stack.state / "db.sqlite3", timeout=20)) as db:
        rows = db.execute("SELECT object_id, status FROM page_images_generation").fetchall()
    return sorted((str(pk), str(status)) for pk, status in rows)


def test_ctrl_c_then_a_second_run_makes_every_picture_once(stack: Demo, browser: Any) -> None:
    from playwright.sync_api import expect

    need_browser()
    with contextlib.closing(sqlite3.connect(stack.state / "db.sqlite3", timeout=20)) as db:
        pages = [str(pk) for (pk,) in db.execute("SELECT id FROM stories_page ORDER BY id")]
        # The demo's backend refuses this one, as a provider's content policy would.
        [(refused,)] = db.execute("SELECT id FROM stories_page WHERE image_text LIKE '%forbidden%'")
    refused = str(refused)
    assert len(pages) >= 4
    assert refused not in pages[:2]
    first = backfill(stack, "--max-in-flight", "2")
    assert first.stderr is not None
    line = first.stderr.readline()  # the first progress line: it waits on its two jobs
    assert line.startswith(f"queued 2/{len(pages)}, in flight 2"), line
    first.send_signal(signal.SIGINT)
    out, err = first.communicate(timeout=30)
    assert first.returncode == 130, err
    assert "Interrupted: 2 queued jobs will still run." in err
    # The second run skips the two that are still generating (or done by now) and does the rest;
    # the refused page fails, so it exits with 1.
    second = backfill(stack)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 1, out + err
    assert f"Queued {len(pages) - 2}: done {len(pages) - 3}, failed 1." in out
    assert "Skipped 2: 2 had a picture or a job running" in out
    assert "1 generation failed" in err
    deadline = time.monotonic() + 30
    while not all(stack.image_of(pk) for pk in pages if pk != refused):
        assert time.monotonic() < deadline, "the first run's jobs did not finish"
        time.sleep(0.3)
    deadline = time.monotonic() + 10
    expected = sorted((pk, "failed" if pk == refused else "done") for pk in pages)
    while generations(stack) != expected:
        # Every page once: no job lost, none done twice.
        assert time.monotonic() < deadline, generations(stack)
        time.sleep(0.3)
    # What the editor finds on the front page: every picture in place, and the refused page
    # says why, with Try again.
    with editor_tab(browser, stack.url, stack) as tab:
        for pk in pages:
            box = tab.locator(f"#page-{pk} .page-images")
            if pk == refused:
                expect(box.locator(".page-images-error")).to_be_visible()
                expect(box.get_by_role("button", name="Try again")).to_be_visible()
            else:
                expect(box.locator("img.page-images-image")).to_be_visible()
        doc_shot(tab.locator("main"), "backfill-resumed")
