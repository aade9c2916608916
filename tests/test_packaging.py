"""What PyPI gets: the wheel and the sdist, what they hold, and which copy of the app a run imports.

The build test makes both archives the way a release does (``uv build``, setuptools in an isolated
environment) and reads them: every template, static file and translation catalog of the source
tree is inside, with ``py.typed`` and the migrations, and nothing of the test tree, the example
project or the benchmarks; ``twine check`` accepts both. The import test runs in every run of the
fast tier: against the checkout (an editable install) it proves that ``page_images`` comes from
src/, and in .ci/wheel's run against the installed wheel (``PAGE_IMAGES_EXPECT_WHEEL``) that it
comes from that wheel's files in the virtualenv, and from nowhere in the checkout.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from importlib.metadata import distribution
from pathlib import Path

import pytest

import page_images

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "page_images"
#: The package's files that are not Python, which the wheel must carry all of.
DATA = ("templates", "static", "locale")


def test_page_images_is_imported_from_the_installed_distribution():
    dist = distribution("django-page-images")
    imported = Path(page_images.__file__).resolve()
    direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    editable = direct_url.get("dir_info", {}).get("editable", False)
    expected_wheel = os.environ.get("PAGE_IMAGES_EXPECT_WHEEL")
    if editable:
        source = Path(direct_url["url"].removeprefix("file://"))
        assert imported == source / "src" / "page_images" / "__init__.py"
        assert not expected_wheel, "PAGE_IMAGES_EXPECT_WHEEL is set, but an editable install ran"
        return
    # Installed from a wheel: the module is the one the distribution's RECORD lists, in the
    # virtualenv's site-packages (tox's lie inside the checkout), never src/'s.
    assert imported == Path(str(dist.locate_file("page_images/__init__.py"))).resolve()
    assert not imported.is_relative_to(ROOT / "src"), f"{imported} is the checkout's src/"
    assert Path(sys.prefix).resolve() in imported.parents
    recorded = {str(file) for file in dist.files or ()}
    assert "page_images/locale/de/LC_MESSAGES/django.mo" in recorded
    assert "page_images/templates/page_images/container.html" in recorded
    if expected_wheel:
        assert direct_url.get("url", "").endswith("/" + Path(expected_wheel).name), direct_url
        assert Path(expected_wheel).name.startswith(f"django_page_images-{dist.version}-")


def pyproject_version() -> str:
    """The one place the version is written (tomllib is 3.11+; the line is plain)."""
    text = (ROOT / "pyproject.toml").read_text()
    (version,) = re.findall(r'^version = "([^"]+)"$', text, flags=re.M)
    return version


def test_the_version_is_written_once_in_pyproject_and_read_from_the_install():
    assert page_images.__version__ == pyproject_version()
    assert "__version__" not in vars(page_images)  # read from the metadata, not written twice


def data_files() -> set[str]:
    """The package's non-Python files in the source tree, as paths inside the package."""
    return {
        str(path.relative_to(PACKAGE.parent))
        for folder in DATA
        for path in (PACKAGE / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "uv", "build", "--quiet", "--out-dir", str(out), str(ROOT)],
        check=True,
        timeout=300,
    )
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


@pytest.mark.process
def test_the_wheel_holds_the_package_its_data_and_nothing_else(built):
    names = set(zipfile.ZipFile(built["wheel"]).namelist())
    missing = data_files() - names
    assert not missing, f"the wheel lacks {sorted(missing)}: see package-data in pyproject.toml"
    assert "page_images/locale/de/LC_MESSAGES/django.mo" in names
    assert "page_images/py.typed" in names
    assert "page_images/migrations/0001_initial.py" in names
    tops = {name.split("/", 1)[0] for name in names}
    assert tops == {"page_images", built["wheel"].name.split("-py3")[0] + ".dist-info"}, tops


@pytest.mark.process
def test_the_sdist_holds_the_package_and_no_test_tree(built):
    with tarfile.open(built["sdist"]) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    package = {name.removeprefix("src/") for name in names if name.startswith("src/page_images/")}
    assert not data_files() - package, sorted(data_files() - package)
    assert {"README.md", "CHANGELOG.md", "pyproject.toml", "PKG-INFO"} <= names
    for left_out in ("tests/", "example_project/", "benchmarks/", "docs/"):
        assert not [name for name in names if name.startswith(left_out)], left_out


@pytest.mark.process
def test_twine_accepts_both_archives(built):
    checked = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", built["wheel"], built["sdist"]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("PASSED") == 2, checked.stdout


@pytest.mark.process
def test_the_built_version_is_pyprojects_and_the_apps(built):
    with zipfile.ZipFile(built["wheel"]) as archive:
        (metadata,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        text = archive.read(metadata).decode()
    version = next(line for line in text.splitlines() if line.startswith("Version: "))[9:]
    assert version == pyproject_version()
    assert built["sdist"].name == f"django_page_images-{version}.tar.gz"
    assert page_images.__version__ == version  # this run's install, from the same line
