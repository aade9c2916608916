"""Sphinx configuration: the Markdown pages of docs/ through MyST, the furo theme, autodoc.

The build must work with no network but package registries and must not cost a minute, so:
intersphinx reads inventories committed under ``_inventories/`` (``_inventories/README.md`` says how
they were made) instead of fetching them, and autodoc imports the app under the test suite's
Django settings with LiteLLM's cost map read locally (the web side never imports LiteLLM; the
backend module imports it lazily, so documenting it loads nothing heavy).
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import django

DOCS = Path(__file__).resolve().parent
sys.path[:0] = [str(DOCS.parent / "src"), str(DOCS.parent)]
# Before anything can import LiteLLM: otherwise its import reaches for the network.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


# autodoc imports the modules, and the models, the admin and the checks need a configured Django:
# the test suite's settings (SQLite, nothing reached at import) are the app as it is tested.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

project = "django-page-images"
author = "django-page-images contributors"
copyright = "django-page-images contributors"
# One version, the package's own (pyproject.toml), as installed.
release = installed_version("django-page-images")
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    # Documents generate_image as the Celery task it is (its name, its signature).
    "celery.contrib.sphinx",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_inventories/README.md"]

# MyST: GitHub-style heading anchors, so that links such as generation.md#retries-and-time-limits
# work on GitHub and in Sphinx alike.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist", "fieldlist"]

# celery.contrib.sphinx (the task directive) needs the class-based autodoc of Sphinx 9.
autodoc_use_legacy_class_based = True
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# Every model has these two; listing them under each says nothing.
autodoc_default_options = {
    "show-inheritance": True,
    "exclude-members": "DoesNotExist, MultipleObjectsReturned",
}

intersphinx_mapping = {
    "django": ("https://docs.djangoproject.com/en/5.2/", str(DOCS / "_inventories" / "django.inv")),
    "celery": ("https://docs.celeryq.dev/en/stable/", str(DOCS / "_inventories" / "celery.inv")),
}
# Never wait on the network: the inventories are local files.
intersphinx_timeout = 1

html_theme = "furo"
html_title = f"django-page-images {release}"


def setup(app: Any) -> None:
    # Django's and Celery's settings, template tags and commands are object types of their own
    # docs' extensions: registered here too, {external+django:setting}`CACHES` and the like resolve
    # through the inventories.
    app.add_crossref_type("setting", "setting", indextemplate="pair: %s; setting")
    app.add_crossref_type("templatetag", "ttag", indextemplate="pair: %s; template tag")
    app.add_crossref_type("django-admin", "djadmin", indextemplate="pair: %s; django-admin command")
