"""The documentation against the code it describes.

A reference that lists a key the code dropped, misses one it added, shows a default it no longer
has or names a check id that no check raises misleads exactly the reader who trusted it. These
tests read the settings page's tables and compare them with ``page_images.conf`` and with every
check id the package's checks can raise (``checks.py`` and the checks of the backends and buses
it runs); and they import every ``page_images.…`` path the pages and the README name. Whether the
pages build (links, toctrees, autodoc) is ``make docs``'s job: ``sphinx-build -W`` in .ci/run.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from page_images.conf import ALT_TEXT_DEFAULTS, DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
PAGE = (ROOT / "docs" / "settings.md").read_text()
SRC = ROOT / "src" / "page_images"
CHECK_ID = re.compile(r"page_images\.[EW]\d{3}")
PAGES = sorted((ROOT / "docs").rglob("*.md"))


def section(heading: str) -> str:
    """The page's text under ``## heading``, up to the next heading of that level."""
    return PAGE.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def table(text: str) -> list[list[str]]:
    """The cells of every row of the first Markdown table in ``text``, header and rule left out."""
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows[2:]]


def code(cell: str) -> str:
    """The first ``code`` span of a cell: the key, or the default as a Python literal."""
    found = re.search(r"`([^`]+)`", cell)
    assert found, f"no `code` in the cell {cell!r}"
    return found.group(1)


def short_ids(cell: str) -> set[str]:
    """The check ids a cell names as ``E003``, in full (``page_images.E003``)."""
    return {f"page_images.{found}" for found in re.findall(r"`([EW]\d{3})`", cell)}


def ids_in_code() -> set[str]:
    """Every check id the package can raise: each one is a string literal in its module."""
    found: set[str] = set()
    for module in SRC.rglob("*.py"):
        found |= set(re.findall(rf'"({CHECK_ID.pattern})"', module.read_text()))
    return found


SETTINGS_ROWS = table(PAGE.split("\n## ", 1)[0])
ALT_TEXT_ROWS = table(section("The keys of `ALT_TEXT`"))
CHECK_ROWS = table(section("System checks"))


def test_the_settings_table_has_every_key_of_the_code_once_and_no_other():
    keys = [code(row[0]) for row in SETTINGS_ROWS]
    assert len(keys) == len(set(keys)), "a key is listed twice"
    assert set(keys) - set(DEFAULTS) == set(), "the page lists keys the code does not have"
    assert set(DEFAULTS) - set(keys) == set(), "keys of page_images.conf.DEFAULTS are missing"


@pytest.mark.parametrize("row", SETTINGS_ROWS, ids=lambda row: code(row[0]))
def test_each_default_is_the_codes(row):
    key, default = code(row[0]), ast.literal_eval(code(row[1]))
    assert default == DEFAULTS[key]
    assert type(default) is type(DEFAULTS[key]), f"{key}: {default!r} for {DEFAULTS[key]!r}"


def test_the_alt_text_table_has_every_key_and_default_of_the_code():
    rows = {code(row[0]): row[1] for row in ALT_TEXT_ROWS}
    assert set(rows) == set(ALT_TEXT_DEFAULTS)
    for key, cell in rows.items():
        if key == "PROMPT":
            # Too long for a cell: the page gives it whole in a block of its own.
            assert f"```text\n{ALT_TEXT_DEFAULTS['PROMPT']}\n```" in PAGE
        else:
            assert ast.literal_eval(code(cell)) == ALT_TEXT_DEFAULTS[key], key


def test_the_checks_table_lists_every_check_id_of_the_code_once_and_no_other():
    listed = [code(row[0]) for row in CHECK_ROWS]
    assert len(listed) == len(set(listed)), "a check id is listed twice"
    assert all(CHECK_ID.fullmatch(found) for found in listed), listed
    assert set(listed) - ids_in_code() == set(), "the page lists ids that no check raises"
    assert ids_in_code() - set(listed) == set(), "check ids of the code are missing from the page"


def test_the_checks_a_setting_names_exist():
    named = set().union(*(short_ids(row[2]) for row in SETTINGS_ROWS))
    assert named - ids_in_code() == set(), "the settings table names ids that no check raises"
    # Every check of a setting's value is named beside that setting (E001 and E002 judge the
    # dict as a whole; the rest judge models, URLs, Celery's broker or the bus's reach).
    about_values = {f"page_images.E{n:03d}" for n in (3, 4, 5, 6, 7, 8, 9, 13, 14, 16)}
    assert about_values - named == set()


def test_the_ids_in_code_are_found_where_checks_raise_them():
    # The scan above must see the ids of the backends' and the buses' own checks too, or a
    # backend's new id could go unlisted without this file noticing.
    found = ids_in_code()
    assert {"page_images.E020", "page_images.E030", "page_images.E041", "page_images.W040"} <= found
    assert {"page_images.E001", "page_images.W050"} <= found


def documented_paths() -> set[str]:
    """Every `page_images.…` code span of the pages and the README, check ids left out."""
    spans: set[str] = set()
    for page in [*PAGES, ROOT / "README.md"]:
        spans |= set(re.findall(r"`(page_images(?:\.\w+)+)`", page.read_text()))
    return {span for span in spans if not CHECK_ID.fullmatch(span)}


def resolve(path: str) -> object:
    """The object a dotted path names: the longest importable module, then its attributes."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            found = getattr(found, attribute)
        return found
    raise ImportError(path)


#: Spans that name something other than a Python object, and what they are.
NOT_IMPORT_PATHS = {
    "page_images.css": SRC / "static" / "page_images" / "page_images.css",
    "page_images.js": SRC / "static" / "page_images" / "page_images.js",
}


def test_every_path_the_docs_name_imports():
    from page_images.tasks import generate_image

    paths = documented_paths()
    assert len(paths) > 20, "the scan found almost nothing: is the pattern still right?"
    for path in sorted(paths):
        if path in NOT_IMPORT_PATHS:
            assert NOT_IMPORT_PATHS[path].is_file(), path
        elif path == "page_images.generate":
            assert generate_image.name == path, "the docs name the task by another name"
        else:
            resolve(path)
