"""TASK_RUNNER: the checks that name a wrong runner or its missing extra, and what follows from
the runner for the event bus and the broker's check."""

from __future__ import annotations

import sys

import django
import pytest
from django.core.management import call_command

from page_images import checks, runners
from page_images.events import IN_PROCESS, resolve
from tests.support.jobs import celery_app

DATABASE = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
IMMEDIATE = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}


def ids(messages):
    return [message.id for message in messages]


@pytest.fixture
def framework(configure, settings):
    settings.TASKS = DATABASE
    configure(TASK_RUNNER="django.tasks")


def test_celery_installed_is_fine(configure):
    configure(TASK_RUNNER="celery")
    assert runners.check_runner() == []


def test_an_unknown_runner_is_named(configure):
    configure(TASK_RUNNER="rq")
    (message,) = runners.check_runner()
    assert message.id == "page_images.E090"
    assert "'celery', 'django.tasks'" in message.msg


def test_a_settings_value_that_is_not_a_dict_is_left_to_e001(settings):
    settings.PAGE_IMAGES = ["not", "a", "dict"]
    assert runners.check_runner() == []


def test_celery_missing_names_the_extra(configure, monkeypatch):
    configure(TASK_RUNNER="celery")
    monkeypatch.setattr(runners, "installed", lambda module: module != "celery")
    (message,) = runners.check_runner()
    assert message.id == "page_images.E091"
    assert message.hint == 'pip install "django-page-images[celery]"'


def test_the_tasks_framework_missing_names_the_extra(framework, monkeypatch):
    monkeypatch.setattr(runners, "installed", lambda module: False)
    (message,) = runners.check_runner()
    assert message.id == "page_images.E091"
    assert message.hint == 'pip install "django-page-images[tasks]"'


def test_the_tasks_framework_is_found_here(framework):
    assert runners.framework_module() == (
        "django.tasks" if django.VERSION >= (6,) else "django_tasks"
    )
    assert runners.check_runner() == []


def test_a_task_backend_that_tasks_lacks(framework, configure):
    configure(TASK_RUNNER="django.tasks", TASK_BACKEND="images")
    (message,) = runners.check_runner()
    assert message.id == "page_images.E092"
    assert "'images'" in message.msg


def test_a_tasks_setting_that_is_not_a_dict(framework, settings):
    settings.TASKS = ["default"]
    assert ids(runners.check_runner()) == ["page_images.E092"]


def test_a_queue_the_backend_does_not_serve(framework, configure, settings):
    configure(TASK_RUNNER="django.tasks", QUEUE="images")
    (message,) = runners.check_runner()
    assert message.id == "page_images.E092"
    assert "its QUEUES: default" in message.msg
    settings.TASKS = {"default": {**DATABASE["default"], "QUEUES": ["default", "images"]}}
    assert runners.check_runner() == []
    settings.TASKS = {"default": {**DATABASE["default"], "QUEUES": []}}  # every queue
    assert runners.check_runner() == []


def test_the_runner_checks_are_read_in_german(framework, configure, monkeypatch):
    from django.utils import translation

    def german() -> tuple[str, str | None]:
        with translation.override("de"):
            (message,) = runners.check_runner()
        return message.msg, message.hint

    configure(TASK_RUNNER="django.tasks", QUEUE="images")
    assert german() == (
        "PAGE_IMAGES['QUEUE'] ist 'images', eine Warteschlange, die das TASKS-Backend 'default' "
        "nicht bedient (seine QUEUES: default).",
        "Die Warteschlange zu den QUEUES dieses Backends hinzufügen oder QUEUE auf eine davon "
        "setzen.",
    )
    configure(TASK_RUNNER="django.tasks", TASK_BACKEND="images")
    assert german()[0].startswith("PAGE_IMAGES['TASK_BACKEND'] ist 'images', aber das ist kein")
    configure(TASK_RUNNER="rq")
    assert german()[0] == (
        "PAGE_IMAGES['TASK_RUNNER'] muss einer der Werte 'celery', 'django.tasks' sein, nicht 'rq'."
    )
    monkeypatch.setattr(runners, "installed", lambda module: False)
    configure(TASK_RUNNER="celery")
    assert german() == (
        "PAGE_IMAGES['TASK_RUNNER'] ist 'celery': Celery führt die Jobs aus, aber Celery ist "
        "nicht installiert.",
        'pip install "django-page-images[celery]"',
    )
    configure(TASK_RUNNER="django.tasks")
    assert "django-tasks (die Rückportierung des Tasks-Frameworks" in german()[0]


def test_the_check_runs_at_start_up(configure):
    configure(TASK_RUNNER="rq")
    with pytest.raises(Exception, match=r"page_images\.E090"):
        call_command("check")


def test_auto_events_follow_the_tasks_framework(framework, settings):
    assert resolve("auto") is None, "a db_worker is another process: containers poll"
    settings.TASKS = IMMEDIATE
    assert resolve("auto") == {"BACKEND": IN_PROCESS, "OPTIONS": {}}
    del settings.TASKS
    assert resolve("auto") == {"BACKEND": IN_PROCESS, "OPTIONS": {}}, "the default: Immediate"


def test_auto_events_without_celery_poll(configure, monkeypatch):
    configure(TASK_RUNNER="celery")
    monkeypatch.setitem(sys.modules, "celery", None)
    assert resolve("auto") is None


def test_an_in_process_bus_with_a_db_worker_is_warned_about(framework, configure, settings):
    configure(TASK_RUNNER="django.tasks", EVENTS={"BACKEND": IN_PROCESS})
    (message,) = checks.check_live_refresh()
    assert message.id == "page_images.W041"
    assert "task worker in another process" in message.msg
    settings.TASKS = IMMEDIATE
    assert checks.check_live_refresh() == []


def test_the_broker_and_bus_checks_leave_a_missing_celery_to_e091(configure, monkeypatch):
    configure(TASK_RUNNER="celery", EVENTS={"BACKEND": IN_PROCESS})
    monkeypatch.setattr(runners, "installed", lambda module: False)
    assert checks.check_broker() == []
    assert checks.check_live_refresh() == []


def test_the_broker_check_is_celerys_only(configure):
    with celery_app("redis://127.0.0.1:1/0", broker_transport_options={}):
        assert ids(checks.check_broker()) == ["page_images.W050"]
        configure(TASK_RUNNER="django.tasks")
        assert checks.check_broker() == []
