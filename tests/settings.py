"""Settings for the test suite.

PAGE_IMAGES_TEST_DB picks the database: "sqlite" (default, needs nothing) or "postgres" (the real
server on 127.0.0.1:5432). runtests.py runs the suite once with each. The SQLite test database is a
file, not memory, so that worker processes started by the integration tests see the same data.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"

TEST_DB = os.environ.get("PAGE_IMAGES_TEST_DB", "sqlite")
if TEST_DB == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("PAGE_IMAGES_PG_NAME", "page_images"),
            "USER": os.environ.get("PAGE_IMAGES_PG_USER", "postgres"),
            "HOST": os.environ.get("PAGE_IMAGES_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("PAGE_IMAGES_PG_PORT", "5432"),
            "CONN_MAX_AGE": 0,
            "TEST": {"NAME": os.environ.get("PAGE_IMAGES_PG_TEST_NAME", "test_page_images")},
        }
    }
else:
    # One file per test run, named in the environment so the worker processes a run starts open
    # the same one, while two runs on one machine (tox, a second terminal) never share it.
    _sqlite = os.environ.setdefault(
        "PAGE_IMAGES_SQLITE_PATH",
        str(Path(tempfile.gettempdir()) / f"page_images_test_{os.getpid()}.sqlite3"),
    )
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _sqlite,
            "TEST": {"NAME": _sqlite},
            "OPTIONS": {"timeout": 20},
        }
    }

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "page_images",
    "tests.testapp",
    # Django's tasks framework (the backport on Django 5.2) and its database backend, for the
    # TASK_RUNNER = "django.tasks" tests and their real db_worker (tests/faults/test_db_worker.py).
    "django_tasks",
    "django_tasks_db",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Django's default hasher takes ~0.3 s a password on purpose; the tests make a user in most tests.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = os.environ.get(
    "PAGE_IMAGES_MEDIA_ROOT", str(Path(tempfile.gettempdir()) / "page_images_test_media")
)
MEDIA_URL = "/media/"
STATIC_URL = "/static/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Celery: the in-memory transport by default; integration tests start workers on Redis.
CELERY_BROKER_URL = os.environ.get("PAGE_IMAGES_TEST_BROKER", "memory://")
CELERY_TASK_ALWAYS_EAGER = False
# What check W050 asks of a Redis broker (the worker processes of the fault suite use Redis).
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_timeout": 5, "socket_connect_timeout": 5}

PAGE_IMAGES = {
    "BACKEND": "page_images.backends.local.LocalBackend",
    "OPTIONS": {},
    "SIZE": "256x256",
    # The tests run their jobs in this process (eager, or a worker thread on memory://); "auto"
    # would follow whichever Celery app a test made current, and keep that bus.
    "EVENTS": {"BACKEND": "page_images.events.memory.InProcessBus"},
}

# The tasks framework's backend: the default (ImmediateBackend) unless a test or the db_worker it
# starts names one, as JSON in this variable.
if os.environ.get("PAGE_IMAGES_TEST_TASKS"):
    import json

    TASKS = json.loads(os.environ["PAGE_IMAGES_TEST_TASKS"])

# Worker processes started by the integration tests get their PAGE_IMAGES from the test that
# started them, as JSON in this variable.
if os.environ.get("PAGE_IMAGES_TEST_OVERRIDES"):
    import json

    PAGE_IMAGES = {**PAGE_IMAGES, **json.loads(os.environ["PAGE_IMAGES_TEST_OVERRIDES"])}
