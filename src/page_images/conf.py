"""Settings, read from one ``PAGE_IMAGES`` dict on every access.

Reading on every access (rather than copying at import) is what makes ``override_settings`` work
in tests and keeps this module free of start-up cost. Validation lives in :mod:`page_images.checks`,
which reports every problem at once with the exact key to change; the properties here only apply
defaults, so a bad value fails loudly where it is used, not silently.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils.translation import gettext_noop

from page_images.exceptions import InvalidSettingValueError

#: The setting's name in a project's settings module.
SETTING_NAME = "PAGE_IMAGES"

DEFAULTS: dict[str, Any] = {
    # Dotted path to the backend class that turns a prompt into picture bytes.
    "BACKEND": "page_images.backends.local.LocalBackend",
    # Keyword arguments for the backend's constructor.
    "OPTIONS": {},
    # Image size asked of the backend, "WIDTHxHEIGHT".
    "SIZE": "1024x1024",
    # Quality asked of the backend ("low", "medium", "high", "auto"), or None for its default.
    "QUALITY": None,
    # Largest image accepted, in bytes, counted while the bytes arrive.
    "MAX_BYTES": 20 * 1024 * 1024,
    # Largest image accepted, in pixels (width times height): the guard against decompression bombs.
    "MAX_PIXELS": 25_000_000,
    # Image formats accepted, as Pillow names them.
    "ALLOWED_FORMATS": ("PNG", "JPEG", "WEBP"),
    # Whole-download deadline for providers that answer with a URL, in seconds.
    "DOWNLOAD_TIMEOUT": 30.0,
    # Tests only: allow plain-http downloads from loopback addresses (the fake provider).
    "ALLOW_LOOPBACK_DOWNLOADS": False,
    # Where generated files go inside the image field's storage.
    "UPLOAD_TO": "page_images",
    # A job running for longer than this many seconds is presumed dead (its worker was killed): the
    # page shows "Try again" and a click may retake the record. Longer than TASK_TIME_LIMIT.
    "CLAIM_TIMEOUT": 360,
    # A job still waiting in the queue after this many seconds is presumed lost (a broker that lost
    # its queue). Queued time is not running time: a long backfill must not look dead.
    "QUEUE_TIMEOUT": 86400,
    # Celery soft and hard time limits for one attempt of the job, in seconds.
    "TASK_SOFT_TIME_LIMIT": 300,
    "TASK_TIME_LIMIT": 330,
    # Retries for transient provider errors, with exponential back-off from RETRY_BACKOFF seconds.
    "MAX_RETRIES": 3,
    "RETRY_BACKOFF": 2.0,
    "RETRY_BACKOFF_MAX": 60.0,
    # The queue of the job (Celery's, or the tasks framework's), or None for the default queue.
    "QUEUE": None,
    # What runs the jobs (docs/tasks.md): "celery" (the [celery] extra), or "django.tasks":
    # Django's tasks framework (Django 6.0+; the django-tasks backport, the [tasks] extra, on 5.2).
    "TASK_RUNNER": "celery",
    # With "django.tasks": the backend of Django's TASKS setting the jobs are enqueued on.
    "TASK_BACKEND": "default",
    # The event bus that carries "this record changed" from workers to the event streams:
    # {"BACKEND": dotted path, "OPTIONS": {...}}, None for no stream (containers poll instead), or
    # "auto": the bus that reaches wherever Celery runs the jobs (Redis pub/sub on a Redis broker,
    # in-process for eager or in-memory Celery, else none, so containers poll).
    "EVENTS": "auto",
    # Dotted path to a callable(instance) told whenever a record's image state changes; the default
    # publishes on the event bus. A site with its own push channel plugs it in here.
    "NOTIFIER": "page_images.events.notify",
    # Dotted path to a callable(user, instance) -> bool deciding who may generate; None means the
    # model's change permission. A model's own can_generate_image() takes precedence.
    "PERMISSION": None,
    # Clicks allowed per user, "N/s", "N/m" or "N/h", counted in the default cache; None: no limit.
    "RATE_LIMIT": "30/m",
    # The URL name the chip (and the prompt panel) posts a click to: the app's trigger view, or
    # the django-ninja router's operation, "api-1.0.0:page_images_generate" say (docs/ninja.md).
    "TRIGGER_URL": "page_images:trigger",
    # Seconds a page's stream token may open streams; after that the page's containers poll.
    "STREAM_MAX_AGE": 43200,
    # Event streams one session may hold open at once in one server process (its tabs).
    "STREAMS_PER_SESSION": 20,
    # Seconds between polls of a generating container when no event stream is configured.
    "POLL_INTERVAL": 2.0,
    # The editor's tools (docs/editing.md). Each is off by default: the chip is one click.
    # The chip opens a panel where the editor reads and edits the prompt before sending it.
    "PROMPT_PANEL": False,
    # A site-wide prompt built from the record's fields, such as "Watercolour illustration of:
    # {image_text}" ({prompt} is the record's own prompt); None: get_image_prompt() as it is.
    "PROMPT_TEMPLATE": None,
    # Longest prompt an editor may send from the panel, in characters.
    "MAX_PROMPT_LENGTH": 4000,
    # Style presets offered in the panel: {"name": {"label": ..., "prompt": words added to the
    # prompt, "size": "WIDTHxHEIGHT", "quality": ...}}; the first is the default.
    "PRESETS": {},
    # Aspect ratios offered in the panel, "W:H" ("1:1", "3:2", "2:3"); the backend maps each to a
    # size its provider accepts. Empty: SIZE only.
    "ASPECT_RATIOS": (),
    # Pictures made per generation; more than one are shown as candidates to choose from.
    "VARIANTS": 1,
    # Rough versions of the picture shown (blurred) while it is drawn, 0-3, where the backend's
    # model can stream them (docs/previews.md). 0: none. OpenAI bills each one, hence off.
    "PREVIEWS": 0,
    # New pictures wait for an editor to accept one before they replace the live picture.
    "REVIEW": False,
    # A picture offers its editors "Regenerate" and "Restore previous".
    "REGENERATE": False,
    # Earlier pictures kept per record for "Restore previous"; older files are deleted. None: all.
    "KEEP_PICTURES": 5,
    # Write into each stored file that an AI model made it: IPTC's digital source type
    # "trainedAlgorithmicMedia" in an XMP packet, as the EU AI Act and the platforms read it.
    "PROVENANCE": True,
    # Show an "AI-generated" label with the picture in the container, to editors and visitors.
    "AI_LABEL": False,
    # USD per picture by model, size and quality, merged over the shipped table (docs/costs.md):
    # {"gpt-image-1": {"1024x1024": {"low": "0.011", ...}, ...}, "my-model": "0.04"}.
    "PRICES": {},
    # Pictures and money allowed per user and for the whole site, per calendar day or month in
    # TIME_ZONE (docs/costs.md): {"per_user": {"day": 20, "month_usd": "10.00"}, "site": {...}}.
    "QUOTAS": {},
    # Alt text written for each new picture (docs/alt-text.md): None writes none; a dict such as
    # {"MODEL": "openai/gpt-4o-mini"} asks a vision model through the backend (ALT_TEXT_DEFAULTS).
    "ALT_TEXT": None,
    # The provider's rate limits per model, shared by every worker through Redis (docs/pacing.md):
    # {"openai/gpt-image-1": {"requests_per_minute": 50, "images_per_minute": 50}}. Empty: unpaced.
    "RATE_LIMITS": {},
    # The Redis that holds the shared budget; None: the event bus's Redis (or a Redis broker's).
    "PACING_REDIS_URL": None,
    # Longest a job waits for its turn, in seconds; a job that would wait longer fails with a
    # message (keep it under a Redis broker's visibility_timeout, one hour by default).
    "PACING_MAX_WAIT": 3000,
}

#: The keys of ``PAGE_IMAGES["ALT_TEXT"]`` and their defaults.
ALT_TEXT_DEFAULTS: dict[str, Any] = {
    # The backend that describes the picture; None: the image backend's (its OPTIONS inherited).
    "BACKEND": None,
    # The vision model, given to the backend as its "model" option; None: the backend's own.
    "MODEL": None,
    # Options for the describing backend, over the inherited ones.
    "OPTIONS": {},
    # The instruction sent with the picture; {language} and {max_length} are filled in.
    "PROMPT": (
        "Write the alt text for this picture, for people who cannot see it, in {language}. "
        "Say what it shows in plain words, at most {max_length} characters, as one or two "
        "sentences. Do not begin with 'Image of', 'Picture of' or the like, do not say it is "
        "generated, and answer with the alt text alone."
    ),
    # Longest alt text kept, in characters; a longer answer is cut at a word.
    "MAX_LENGTH": 250,
    # Seconds the job waits for a description before it leaves the alt text empty.
    "TIMEOUT": 30.0,
}


def parse_size(value: str) -> tuple[int, int]:
    """Parse ``"1024x1024"``; raise ``ValueError`` with the reason for anything else (an
    :class:`~page_images.exceptions.InvalidSettingValueError`, which a check shows translated)."""
    width, sep, height = str(value).lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise InvalidSettingValueError(
            gettext_noop("%(value)s is not of the form 'WIDTHxHEIGHT', such as '1024x1024'"),
            {"value": repr(value)},
        )
    size = (int(width), int(height))
    if not all(16 <= side <= 8192 for side in size):
        raise InvalidSettingValueError(
            gettext_noop("%(value)s has a side outside 16 to 8192 pixels"), {"value": repr(value)}
        )
    return size


class PageImagesSettings:
    """One property per key of ``settings.PAGE_IMAGES``, with its default."""

    def raw(self) -> dict[str, Any]:
        value = getattr(settings, SETTING_NAME, None)
        return value if isinstance(value, dict) else {}

    def get(self, key: str) -> Any:
        return self.raw().get(key, DEFAULTS[key])

    @property
    def BACKEND(self) -> str:
        return str(self.get("BACKEND"))

    @property
    def OPTIONS(self) -> dict[str, Any]:
        return dict(self.get("OPTIONS") or {})

    @property
    def SIZE(self) -> str:
        return str(self.get("SIZE"))

    @property
    def QUALITY(self) -> str | None:
        value = self.get("QUALITY")
        return None if value is None else str(value)

    @property
    def MAX_BYTES(self) -> int:
        return int(self.get("MAX_BYTES"))

    @property
    def MAX_PIXELS(self) -> int:
        return int(self.get("MAX_PIXELS"))

    @property
    def ALLOWED_FORMATS(self) -> tuple[str, ...]:
        return tuple(str(f).upper() for f in self.get("ALLOWED_FORMATS"))

    @property
    def DOWNLOAD_TIMEOUT(self) -> float:
        return float(self.get("DOWNLOAD_TIMEOUT"))

    @property
    def ALLOW_LOOPBACK_DOWNLOADS(self) -> bool:
        return bool(self.get("ALLOW_LOOPBACK_DOWNLOADS"))

    @property
    def UPLOAD_TO(self) -> str:
        return str(self.get("UPLOAD_TO")).strip("/")

    @property
    def CLAIM_TIMEOUT(self) -> float:
        return float(self.get("CLAIM_TIMEOUT"))

    @property
    def QUEUE_TIMEOUT(self) -> float:
        return float(self.get("QUEUE_TIMEOUT"))

    @property
    def TASK_SOFT_TIME_LIMIT(self) -> float:
        return float(self.get("TASK_SOFT_TIME_LIMIT"))

    @property
    def TASK_TIME_LIMIT(self) -> float:
        return float(self.get("TASK_TIME_LIMIT"))

    @property
    def MAX_RETRIES(self) -> int:
        return int(self.get("MAX_RETRIES"))

    @property
    def RETRY_BACKOFF(self) -> float:
        return float(self.get("RETRY_BACKOFF"))

    @property
    def RETRY_BACKOFF_MAX(self) -> float:
        return float(self.get("RETRY_BACKOFF_MAX"))

    @property
    def QUEUE(self) -> str | None:
        value = self.get("QUEUE")
        return None if value is None else str(value)

    @property
    def TASK_RUNNER(self) -> str:
        return str(self.get("TASK_RUNNER"))

    @property
    def TASK_BACKEND(self) -> str:
        return str(self.get("TASK_BACKEND"))

    @property
    def EVENTS(self) -> Any:
        """``"auto"``, ``None`` or a ``{"BACKEND": …, "OPTIONS": …}`` dict (checked by E040)."""
        value = self.get("EVENTS")
        return dict(value) if isinstance(value, dict) else value

    @property
    def STREAM_MAX_AGE(self) -> float:
        return float(self.get("STREAM_MAX_AGE"))

    @property
    def STREAMS_PER_SESSION(self) -> int:
        return int(self.get("STREAMS_PER_SESSION"))

    @property
    def NOTIFIER(self) -> str:
        return str(self.get("NOTIFIER"))

    @property
    def PERMISSION(self) -> str | None:
        value = self.get("PERMISSION")
        return None if value is None else str(value)

    @property
    def RATE_LIMIT(self) -> str | None:
        value = self.get("RATE_LIMIT")
        return None if value is None else str(value)

    @property
    def TRIGGER_URL(self) -> str:
        return str(self.get("TRIGGER_URL"))

    @property
    def POLL_INTERVAL(self) -> float:
        return float(self.get("POLL_INTERVAL"))

    @property
    def PROMPT_PANEL(self) -> bool:
        return bool(self.get("PROMPT_PANEL"))

    @property
    def PROMPT_TEMPLATE(self) -> str | None:
        value = self.get("PROMPT_TEMPLATE")
        return None if value is None else str(value)

    @property
    def MAX_PROMPT_LENGTH(self) -> int:
        return int(self.get("MAX_PROMPT_LENGTH"))

    @property
    def PRESETS(self) -> dict[str, dict[str, Any]]:
        return {str(name): dict(spec) for name, spec in dict(self.get("PRESETS") or {}).items()}

    @property
    def ASPECT_RATIOS(self) -> tuple[str, ...]:
        return tuple(str(ratio) for ratio in self.get("ASPECT_RATIOS") or ())

    @property
    def VARIANTS(self) -> int:
        return int(self.get("VARIANTS"))

    @property
    def PREVIEWS(self) -> int:
        return int(self.get("PREVIEWS"))

    @property
    def REVIEW(self) -> bool:
        return bool(self.get("REVIEW"))

    @property
    def REGENERATE(self) -> bool:
        return bool(self.get("REGENERATE"))

    @property
    def KEEP_PICTURES(self) -> int | None:
        value = self.get("KEEP_PICTURES")
        return None if value is None else int(value)

    @property
    def PROVENANCE(self) -> bool:
        return bool(self.get("PROVENANCE"))

    @property
    def AI_LABEL(self) -> bool:
        return bool(self.get("AI_LABEL"))

    @property
    def PRICES(self) -> dict[str, Any]:
        return dict(self.get("PRICES") or {})

    @property
    def QUOTAS(self) -> dict[str, dict[str, Any]]:
        return {
            str(scope): dict(limits) for scope, limits in dict(self.get("QUOTAS") or {}).items()
        }

    @property
    def RATE_LIMITS(self) -> dict[str, dict[str, Any]]:
        return {
            str(model): dict(limit) for model, limit in dict(self.get("RATE_LIMITS") or {}).items()
        }

    @property
    def PACING_REDIS_URL(self) -> str | None:
        value = self.get("PACING_REDIS_URL")
        return str(value) if value else None

    @property
    def PACING_MAX_WAIT(self) -> float:
        return float(self.get("PACING_MAX_WAIT"))

    @property
    def ALT_TEXT(self) -> dict[str, Any] | None:
        """``ALT_TEXT`` with its defaults, or None when no alt text is written (checked by E080)."""
        value = self.get("ALT_TEXT")
        if not isinstance(value, dict):
            return None
        return {**ALT_TEXT_DEFAULTS, **value}


def parse_ratio(value: str) -> tuple[int, int]:
    """Parse ``"3:2"``; raise ``ValueError`` with the reason for anything else (an
    :class:`~page_images.exceptions.InvalidSettingValueError`, which a check shows translated)."""
    width, sep, height = str(value).partition(":")
    if not sep or not width.isdigit() or not height.isdigit() or not int(width) or not int(height):
        raise InvalidSettingValueError(
            gettext_noop("%(value)s is not an aspect ratio of the form 'W:H', such as '3:2'"),
            {"value": repr(value)},
        )
    return int(width), int(height)


app_settings = PageImagesSettings()
