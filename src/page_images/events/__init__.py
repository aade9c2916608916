"""The event stream's public side: the configured bus, ``publish`` and the default notifier.

``publish`` is called by workers right after a picture is stored, when nothing useful can be done
about a failure any more: the database already holds the truth and the next resync will show it.
So it never raises; a broken bus is reported by the system checks at start-up and by a logged
warning at run time, never by a failed job.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.core.checks import Error
from django.utils.translation import gettext_noop

from page_images import runners
from page_images.conf import SETTING_NAME, app_settings
from page_images.events.base import RESYNC, EventBus
from page_images.exceptions import PageImagesConfigurationError
from page_images.loading import Configured, build

if TYPE_CHECKING:
    from django.core.checks import CheckMessage

    from page_images.models import ImageGeneratingMixin

__all__ = ["RESYNC", "EventBus", "build_bus", "check_events", "get_bus", "notify", "publish"]

logger = logging.getLogger("page_images.events")

_WHERE = f"{SETTING_NAME}['EVENTS']"

#: The default ``EVENTS``: derive the bus from where Celery runs the jobs.
AUTO = "auto"
IN_PROCESS = "page_images.events.memory.InProcessBus"
REDIS = "page_images.events.redis.RedisBus"


def resolve(config: Any) -> Any:
    """``EVENTS`` as a bus configuration, with ``"auto"`` replaced by what it means here.

    A bus must reach the process that runs the jobs, or pages wait for news that never comes.
    Celery says where that is: in this process when it runs tasks eagerly or on its in-memory
    transport; behind a Redis broker, where Redis pub/sub reaches the web processes too. For any
    other broker there is no bus the app can derive, so ``None``: generating containers poll.
    On Django's tasks framework (``TASK_RUNNER``), the jobs run here only on its
    ``ImmediateBackend``; any other backend's worker is another process, and no bus follows from
    it. Without Celery installed, likewise ``None`` (check E091 names the missing extra).
    """
    if config != AUTO:
        return config
    if app_settings.TASK_RUNNER == runners.DJANGO_TASKS:
        return {"BACKEND": IN_PROCESS, "OPTIONS": {}} if runners.runs_in_process() else None
    try:
        from celery import current_app
    except ImportError:
        return None

    conf = current_app.conf
    url = str(conf.broker_write_url or conf.broker_url or "")
    scheme = url.split("://", 1)[0].lower()
    if conf.task_always_eager or scheme == "memory":
        return {"BACKEND": IN_PROCESS, "OPTIONS": {}}
    if scheme in ("redis", "rediss"):
        return {"BACKEND": REDIS, "OPTIONS": {"url": url}}
    return None


def build_bus(config: Any) -> EventBus:
    """Build the bus ``config`` describes; errors name the key to fix."""
    if not isinstance(config, dict) or not isinstance(config.get("BACKEND"), str):
        raise PageImagesConfigurationError(
            gettext_noop(
                "PAGE_IMAGES['EVENTS'] must be 'auto', None or a dict with a dotted path in "
                "'BACKEND', not %(value)s."
            ),
            {"value": repr(config)},
        )
    path = config["BACKEND"]
    options = config.get("OPTIONS") or {}
    if not isinstance(options, dict):
        raise PageImagesConfigurationError(
            gettext_noop("PAGE_IMAGES['EVENTS']['OPTIONS'] must be a dict, not %(value)s."),
            {"value": repr(options)},
        )
    bus: EventBus = build(_WHERE, path, options, EventBus)
    return bus


def _configured_bus() -> EventBus | None:
    config = resolve(app_settings.EVENTS)
    return None if config is None else build_bus(config)


_bus: Configured[EventBus | None] = Configured(_configured_bus)


def get_bus() -> EventBus | None:
    """The bus the settings name, built once per process; None when there is none (poll)."""
    return _bus.get()


def publish(reference: str) -> None:
    """Tell every stream that ``reference`` changed. Never raises; a no-op without a bus."""
    try:
        bus = get_bus()
        if bus is not None:
            bus.publish(reference)
    except Exception:
        logger.exception("page_images: could not publish %s", reference)


def notify(instance: ImageGeneratingMixin) -> None:
    """The default ``NOTIFIER``: announce the record on the event bus."""
    publish(instance.image_reference)


def check_events(config: Any) -> list[CheckMessage]:
    """System-check messages for an ``EVENTS`` value (E040: the setting; then the bus's own)."""
    config = resolve(config)
    if config is None:
        return []
    try:
        bus = build_bus(config)
    except PageImagesConfigurationError as exc:
        return [Error(exc.translated(), id="page_images.E040")]
    return bus.check()
