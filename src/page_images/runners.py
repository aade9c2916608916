"""Which task framework runs the jobs (``PAGE_IMAGES["TASK_RUNNER"]``), and what follows from it.

Neither framework is imported here, so that the web process, the checks and the event bus can ask
about the runner at no cost and without the other framework's extra installed. A runner whose
package is missing is reported at start-up by :func:`check_runner` with the extra to install,
rather than by a traceback at the first click.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.utils.translation import gettext as _

from page_images.conf import SETTING_NAME, app_settings

#: ``TASK_RUNNER``'s values: Celery, and Django's tasks framework (or its backport).
CELERY = "celery"
DJANGO_TASKS = "django.tasks"
RUNNERS = (CELERY, DJANGO_TASKS)

#: The backend both Django's tasks framework and the backport use when ``TASKS`` is not set.
IMMEDIATE = "ImmediateBackend"


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, found without importing it (its parent is imported)."""
    return importlib.util.find_spec(module) is not None


def framework_module() -> str | None:
    """The tasks framework's package here: Django's own (6.0+), the backport, or None."""
    if installed("django.tasks"):
        return "django.tasks"  # pragma: no cover - the tox environments on Django 6 run it
    return "django_tasks" if installed("django_tasks") else None


def task_backend_config() -> dict[str, Any] | None:
    """``TASKS[TASK_BACKEND]``, the framework's default when ``TASKS`` is unset; None if absent."""
    tasks = getattr(settings, "TASKS", None)
    if not tasks:
        return {"BACKEND": f"django.tasks.backends.immediate.{IMMEDIATE}"}
    config = tasks.get(app_settings.TASK_BACKEND) if isinstance(tasks, dict) else None
    return config if isinstance(config, dict) else None


def runs_in_process() -> bool:
    """Whether the tasks framework runs each job inside the process that enqueued it."""
    config = task_backend_config() or {}
    return str(config.get("BACKEND", "")).rsplit(".", 1)[-1] == IMMEDIATE


def check_runner(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E090: an unknown ``TASK_RUNNER``; E091: its package is missing (the message names the
    extra); E092: ``TASK_BACKEND`` is not a backend of ``TASKS``, or it does not serve ``QUEUE``."""
    raw = getattr(settings, SETTING_NAME, {})
    if not isinstance(raw, dict):
        return []  # E001 says so
    runner = raw.get("TASK_RUNNER", CELERY)
    if runner not in RUNNERS:
        return [
            Error(
                _("PAGE_IMAGES['TASK_RUNNER'] must be one of %(runners)s, not %(value)s.")
                % {"runners": ", ".join(map(repr, RUNNERS)), "value": repr(runner)},
                id="page_images.E090",
            )
        ]
    if runner == CELERY:
        if installed("celery"):
            return []
        return [
            _missing(
                _(
                    "PAGE_IMAGES['TASK_RUNNER'] is %(runner)s: Celery runs the jobs, but Celery "
                    "is not installed."
                ),
                "celery",
            )
        ]
    if framework_module() is None:
        return [
            _missing(
                _(
                    "PAGE_IMAGES['TASK_RUNNER'] is %(runner)s: Django's tasks framework runs the "
                    "jobs, but django-tasks (the tasks framework's backport for Django before "
                    "6.0) is not installed."
                ),
                "tasks",
            )
        ]
    return _check_task_backend()


def _missing(message: str, extra: str) -> Error:
    """E091: ``message`` (a translated sentence with ``%(runner)s``) and the extra to install."""
    return Error(
        message % {"runner": repr(app_settings.TASK_RUNNER)},
        hint=f'pip install "django-page-images[{extra}]"',
        id="page_images.E091",
    )


def _check_task_backend() -> list[CheckMessage]:
    alias = app_settings.TASK_BACKEND
    config = task_backend_config()
    if config is None:
        return [
            Error(
                _(
                    "PAGE_IMAGES['TASK_BACKEND'] is %(alias)s, which is not a backend of the "
                    "TASKS setting."
                )
                % {"alias": repr(alias)},
                hint=_("Name a key of TASKS, or add that backend to TASKS."),
                id="page_images.E092",
            )
        ]
    queue = app_settings.QUEUE or "default"
    queues = config.get("QUEUES", ["default"])
    if queues and queue not in queues:  # an empty list serves every queue
        return [
            Error(
                _(
                    "PAGE_IMAGES['QUEUE'] is %(queue)s, a queue the TASKS backend %(alias)s "
                    "does not serve (its QUEUES: %(queues)s)."
                )
                % {
                    "queue": repr(queue),
                    "alias": repr(alias),
                    "queues": ", ".join(map(str, queues)),
                },
                hint=_("Add the queue to that backend's QUEUES, or set QUEUE to one of them."),
                id="page_images.E092",
            )
        ]
    return []
