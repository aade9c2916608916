"""Settings of the example site.

With nothing set it needs no server at all: SQLite, Celery on kombu's filesystem transport, the
LocalBackend, and the file event bus. Two environment variables switch it to production parts:

- REDIS_URL=redis://127.0.0.1:6379/0: Celery, the event bus and the cache on Redis;
- PAGE_IMAGES_MODEL=openai/gpt-image-1 (with OPENAI_API_KEY, or PAGE_IMAGES_API_BASE for the fake
  provider): real pictures through LiteLLM; PAGE_IMAGES_ALT_MODEL=openai/gpt-4o-mini beside it
  writes their alt text with that vision model (without LiteLLM, LocalBackend names the colours).

DEMO_LANGUAGE=de shows the app's German translation to every browser; without it, each browser
gets English or German as its Accept-Language asks.
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("DEMO_STATE_DIR", BASE_DIR / ".demo"))

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "page_images",
    "stories",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]
# The app ships a German translation. Each browser gets the chip in its own language among these
# (LocaleMiddleware reads Accept-Language); DEMO_LANGUAGE=de shows every browser the German one.
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
DEMO_LANGUAGE = os.environ.get("DEMO_LANGUAGE", "")
LANGUAGE_CODE = DEMO_LANGUAGE or "en"
if not DEMO_LANGUAGE:
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.contrib.sessions.middleware.SessionMiddleware") + 1,
        "django.middleware.locale.LocaleMiddleware",
    )
ROOT_URLCONF = "example.urls"
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
ASGI_APPLICATION = "example.asgi.application"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DEMO_DATABASE", str(STATE_DIR / "db.sqlite3")),
        # A worker and the web server write to one file: wait for each other's locks.
        "OPTIONS": {"timeout": 20},
        "CONN_MAX_AGE": 0,
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
STATIC_URL = "/static/"
MEDIA_URL = "/media/"
MEDIA_ROOT = STATE_DIR / "media"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

REDIS_URL = os.environ.get("REDIS_URL")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    # Without these a Redis that stops answering would hold a click's request forever (W050).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_timeout": 5, "socket_connect_timeout": 5}
    # A job only when a thread is free, so another worker's idle threads get it (deployment.md).
    CELERY_WORKER_DISABLE_PREFETCH = True
    EVENTS = {"BACKEND": "page_images.events.redis.RedisBus", "OPTIONS": {"url": REDIS_URL}}
    # The rate limit counted once for every web process; one pool per process under ASGI.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"pool_class": "page_images.redis_pool.SharedConnectionPool"},
        }
    }
else:
    _broker = STATE_DIR / "broker"
    for _folder in (_broker / "queue", _broker / "processed", _broker / "control"):
        _folder.mkdir(parents=True, exist_ok=True)  # kombu's filesystem transport expects them
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker / "queue"),
        "data_folder_out": str(_broker / "queue"),
        "processed_folder": str(_broker / "processed"),
        # Its exchange files, which kombu otherwise writes to ./control in the working directory.
        "control_folder": str(_broker / "control"),
        "store_processed": False,
        "polling_interval": 0.1,
    }
    EVENTS = {
        "BACKEND": "page_images.events.files.FileBus",
        "OPTIONS": {"path": str(STATE_DIR / "events")},
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

if os.environ.get("PAGE_IMAGES_MODEL"):
    _options = {"model": os.environ["PAGE_IMAGES_MODEL"]}
    if os.environ.get("PAGE_IMAGES_API_BASE"):
        _options["api_base"] = os.environ["PAGE_IMAGES_API_BASE"]
    if os.environ.get("PAGE_IMAGES_API_KEY"):
        _options["api_key"] = os.environ["PAGE_IMAGES_API_KEY"]
    BACKEND, OPTIONS = "page_images.backends.litellm.LiteLLMBackend", _options
    _alt_model = os.environ.get("PAGE_IMAGES_ALT_MODEL")
    ALT_TEXT: dict[str, str] | None = {"MODEL": _alt_model} if _alt_model else None
else:
    # Two seconds of "generating" so the waiting state can be seen; prompts with "forbidden" in
    # them are refused like a provider's content policy, to show the error state and its retry.
    BACKEND = "page_images.backends.local.LocalBackend"
    OPTIONS = {"delay": float(os.environ.get("DEMO_DELAY", "2")), "refuse_words": ["forbidden"]}
    ALT_TEXT = {}

PAGE_IMAGES = {
    "BACKEND": BACKEND,
    "OPTIONS": OPTIONS,
    "SIZE": "512x512",
    "EVENTS": EVENTS,
    "ALLOW_LOOPBACK_DOWNLOADS": bool(os.environ.get("PAGE_IMAGES_API_BASE")),
    "RATE_LIMIT": None,
    # The demo shows the label that may go with a generated picture (off by default).
    "AI_LABEL": True,
    # Alt text for every new picture: with LocalBackend, its colours, named from the pixels; with
    # a vision model (PAGE_IMAGES_ALT_MODEL, say openai/gpt-4o-mini), a real description in the
    # site's language. Editors change it in the admin; their own words are never overwritten.
    "ALT_TEXT": ALT_TEXT,
    # Rough versions of the picture, blurred, while it is drawn (docs/previews.md): the
    # LocalBackend paints them for nothing; a real model's are billed, so they are asked for only
    # when DEMO_PREVIEWS says so. DEMO_PREVIEWS=0 shows the spinner alone.
    "PREVIEWS": int(
        os.environ.get("DEMO_PREVIEWS", "0" if os.environ.get("PAGE_IMAGES_MODEL") else "2")
    ),
}
# The editor's tools (docs/editing.md): the chip opens a prompt panel with styles and shapes, two
# candidates wait for the editor's choice, and a picture offers Regenerate and Earlier pictures.
# DEMO_EDITOR_TOOLS=0 shows the plain one-click chip, the app's default.
if os.environ.get("DEMO_EDITOR_TOOLS", "1") == "1":
    PAGE_IMAGES |= {
        "PROMPT_PANEL": True,
        "PRESETS": {
            "watercolour": {"label": "Watercolour", "prompt": "Soft watercolour illustration."},
            "ink": {"label": "Ink drawing", "prompt": "Black ink line drawing, cross-hatched."},
            "poster": {"label": "Poster", "prompt": "Bold flat-colour travel poster."},
        },
        "ASPECT_RATIOS": ("1:1", "3:2", "2:3"),
        "VARIANTS": int(os.environ.get("DEMO_VARIANTS", "2")),
        "REVIEW": True,
        "REGENERATE": True,
        # Each editor may make this many pictures a day (candidates count): the panel says how
        # many are left, and a click past it is refused with the reason.
        "QUOTAS": {"per_user": {"day": int(os.environ.get("DEMO_DAILY_IMAGES", "60"))}},
    }
# The ways a site built with django-ninja and django-cotton uses the app (docs/ninja.md,
# docs/cotton.md), with both installed ("django-page-images[ninja,cotton]"): DEMO_API=ninja sends
# the chip's click to the ninja router (example/urls.py mounts it), DEMO_COMPONENTS=cotton draws
# the front page with the components instead of the tags.
if os.environ.get("DEMO_API") == "ninja":
    PAGE_IMAGES["TRIGGER_URL"] = "api:page_images_generate"
if os.environ.get("DEMO_COMPONENTS") == "cotton":
    INSTALLED_APPS.append("django_cotton")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"page_images": {"handlers": ["console"], "level": "INFO"}},
}
