"""Django settings of the benchmark site: PostgreSQL, Redis, ``CONN_MAX_AGE = 0``.

Every service address comes from the environment, set by :mod:`benchmarks.harness` for the
processes it starts (uvicorn, Celery workers, the in-process measurements), so that one settings
module serves every target. ``BENCH_INSTALL`` says what is installed besides Django's own apps:
``site`` (the default: ``page_images`` and the benchmark site), ``app`` (``page_images`` alone) or
``none``, the footprint target's baseline.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "benchmarks-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"

INSTALL = os.environ.get("BENCH_INSTALL", "site")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("BENCH_PG_NAME", "page_images_bench"),
        "USER": os.environ.get("BENCH_PG_USER", "postgres"),
        "HOST": os.environ.get("BENCH_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("BENCH_PG_PORT", "5432"),
        # Under ASGI a persistent connection is per thread and never given back: 0, as the
        # deployment notes say (docs/deployment.md).
        "CONN_MAX_AGE": 0,
    }
}
if os.environ.get("BENCH_PG_POOL", "1") == "1":
    # psycopg's pool (Django >= 5.1): a closed connection goes back to the pool, so a job that lets
    # its connection go before the provider call, or a request under ASGI, does not pay for a new
    # PostgreSQL backend each time. Bounded per process: the server's max_connections holds.
    DATABASES["default"]["OPTIONS"] = {"pool": {"min_size": 1, "max_size": 10, "timeout": 10}}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
INSTALLED_APPS += {"site": ["page_images", "benchmarks.site"], "app": ["page_images"]}.get(
    INSTALL, []
)

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "benchmarks.site.urls"
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
STATIC_URL = "/static/"
MEDIA_URL = "/media/"
MEDIA_ROOT = os.environ.get(
    "BENCH_MEDIA_ROOT", str(Path(tempfile.gettempdir()) / "page_images_bench_media")
)
# Fast hashing: logging the load generators' users in is not what is measured.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# The rate limit's counter is shared by every web process, as in production.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # Django builds a cache object per request under ASGI: share one pool per process
        # (docs/deployment.md).
        "OPTIONS": {"pool_class": "page_images.redis_pool.SharedConnectionPool"},
    }
}
if os.environ.get("BENCH_CACHE_POOL") == "django":
    del CACHES["default"]["OPTIONS"]

CELERY_BROKER_URL = REDIS_URL
# Bounded waits on a Redis that stops answering (Celery's own advice for the Redis transport).
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_timeout": 5, "socket_connect_timeout": 5}
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

PAGE_IMAGES = {
    "BACKEND": "page_images.backends.litellm.LiteLLMBackend",
    "OPTIONS": {
        "model": "openai/gpt-image-1",
        "api_base": os.environ.get("BENCH_PROVIDER", "http://127.0.0.1:9/v1"),
        "api_key": "sk-bench-not-a-key",
        "timeout": 60,
    },
    "SIZE": "1024x1024",
    "ALLOW_LOOPBACK_DOWNLOADS": True,
    "EVENTS": {"BACKEND": "page_images.events.redis.RedisBus", "OPTIONS": {"url": REDIS_URL}},
    # High enough never to refuse the load generators, low enough that the counter really runs.
    "RATE_LIMIT": "1000000/m",
}
if os.environ.get("BENCH_PAGE_IMAGES"):
    PAGE_IMAGES = {**PAGE_IMAGES, **json.loads(os.environ["BENCH_PAGE_IMAGES"])}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
