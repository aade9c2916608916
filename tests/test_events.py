"""EVENTS = "auto" (the default): a bus that reaches wherever Celery runs the jobs, or polling."""

from __future__ import annotations

import pytest

from page_images.events import IN_PROCESS, REDIS, check_events, get_bus, resolve
from page_images.events.memory import InProcessBus


@pytest.fixture
def celery(request):
    from tests.support.jobs import celery_app

    url, conf = request.param
    with celery_app(url, **conf) as app:
        yield app


@pytest.mark.parametrize(
    ("celery", "expected"),
    [
        (
            ("redis://127.0.0.1:6379/3", {}),
            {"BACKEND": REDIS, "OPTIONS": {"url": "redis://127.0.0.1:6379/3"}},
        ),
        (
            ("rediss://cache.example:6380/0", {}),
            {"BACKEND": REDIS, "OPTIONS": {"url": "rediss://cache.example:6380/0"}},
        ),
        (("memory://", {}), {"BACKEND": IN_PROCESS, "OPTIONS": {}}),
        (
            ("amqp://guest@127.0.0.1//", {"task_always_eager": True}),
            {"BACKEND": IN_PROCESS, "OPTIONS": {}},
        ),
        (("amqp://guest@127.0.0.1//", {}), None),
        (("filesystem://", {}), None),
    ],
    indirect=["celery"],
)
def test_auto_follows_the_broker(celery, expected):
    assert resolve("auto") == expected


def test_an_explicit_setting_is_left_alone():
    config = {"BACKEND": IN_PROCESS, "OPTIONS": {}}
    assert resolve(config) is config
    assert resolve(None) is None


@pytest.mark.parametrize("celery", [("amqp://guest@127.0.0.1//", {})], indirect=True)
def test_with_a_broker_no_bus_can_follow_pages_poll(celery, settings, editor, page):
    from django.template import Context, Template
    from django.test import AsyncRequestFactory
    from django.utils import timezone

    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "EVENTS": "auto"}
    assert get_bus() is None
    assert check_events("auto") == []
    request = AsyncRequestFactory().get("/")
    request.user = editor
    page.image_generating, page.image_claimed_at = True, timezone.now()
    html = Template("{% load page_images %}{% page_image page %}{% page_images_stream %}").render(
        Context({"request": request, "page": page})
    )
    assert "every 2000ms" in html
    assert "data-stream-url" not in html


@pytest.mark.parametrize("celery", [("memory://", {})], indirect=True)
def test_auto_builds_the_bus_it_names(celery, settings):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "EVENTS": "auto"}
    assert isinstance(get_bus(), InProcessBus)
