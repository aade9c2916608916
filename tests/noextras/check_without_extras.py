"""The app installed with no extras at all (``tox -e noextras``): what imports, and what says
which extra to install.

A site that has not installed Celery, LiteLLM, Redis, django-htmx or the tasks framework can
still import the app, its models, URLs, template tags, views and checks; every setting that asks
for a missing package is reported by a system check at start-up naming the extra, and a click
that reaches one anyway releases its claim and raises an error that names it. The main suite
cannot prove this: its environment has every extra. This file runs in one that has none.
"""

from __future__ import annotations

import importlib
import importlib.util

import django
import pytest
from django.conf import settings

MISSING = ("celery", "kombu", "litellm", "redis", "django_htmx", "django_tasks")

settings.configure(
    SECRET_KEY="no-extras-check",
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "page_images",
        "tests.testapp",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    ROOT_URLCONF="noextras_urls",
    TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}],
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    USE_TZ=True,
    PAGE_IMAGES={},
)
django.setup()

from django.core.checks import run_checks  # noqa: E402  (after settings.configure)
from django.core.management import call_command  # noqa: E402
from django.test.utils import override_settings  # noqa: E402


def problems(**page_images):
    """The ids and hints of the start-up checks with these PAGE_IMAGES."""
    with override_settings(PAGE_IMAGES=page_images):
        return {message.id: message.hint for message in run_checks() if message.is_serious()}


def test_this_environment_has_no_extra():
    installed = [name for name in MISSING if importlib.util.find_spec(name) is not None]
    assert installed == [], "tox -e noextras must install the app with no extras"


@pytest.mark.parametrize(
    "module",
    [
        "page_images",
        "page_images.models",
        "page_images.urls",
        "page_images.views",
        "page_images.services",
        "page_images.queueing",
        "page_images.checks",
        "page_images.templatetags.page_images",
        "page_images.events",
        "page_images.backends.litellm",
    ],
)
def test_the_app_imports(module):
    importlib.import_module(module)


def test_the_default_runner_says_to_install_celery():
    assert problems() == {"page_images.E091": 'pip install "django-page-images[celery]"'}


def test_the_tasks_framework_needs_the_backport_before_django_6_only():
    expected = {"page_images.E091": 'pip install "django-page-images[tasks]"'}
    if django.VERSION >= (6, 0):
        expected = {}  # django.tasks is Django's own
    assert problems(TASK_RUNNER="django.tasks") == expected


def test_litellm_and_redis_are_named_by_their_checks():
    found = problems(
        BACKEND="page_images.backends.litellm.LiteLLMBackend",
        OPTIONS={"model": "openai/gpt-image-1"},
        EVENTS={"BACKEND": "page_images.events.redis.RedisBus"},
    )
    assert found["page_images.E020"] == 'pip install "django-page-images[litellm]"'
    assert "page_images.E042" in found


@pytest.mark.parametrize(
    ("module", "extra"),
    [("page_images.tasks", "celery"), ("page_images.events.redis", None)],
)
def test_importing_a_runner_without_its_package_names_the_extra(module, extra):
    if extra is None:
        importlib.import_module(module)  # the bus imports redis only when it is built
        return
    with pytest.raises(django.core.exceptions.ImproperlyConfigured, match=rf"\[{extra}\]"):
        importlib.import_module(module)


def test_a_click_without_the_runner_releases_the_claim_and_names_the_extra():
    from tests.testapp.models import Page, Story

    from page_images import queueing
    from page_images.exceptions import EnqueueError, MissingDependencyError

    call_command("migrate", verbosity=0, run_syncdb=True)
    page = Page.objects.create(story=Story.objects.create(title="t"), image_text="A fox")
    with pytest.raises(EnqueueError) as raised:
        queueing.request_generation(page)
    assert isinstance(raised.value.__cause__, MissingDependencyError)
    assert 'pip install "django-page-images[celery]"' in str(raised.value.__cause__)
    page.refresh_from_db()
    assert (page.image_generating, page.image_error) == (False, queueing.ENQUEUE_FAILED_MESSAGE)
