"""Issue 11's view cases; folded into test_views.py once the tiers branch is merged."""

from __future__ import annotations

import socket

import pytest
from django.test import Client

from page_images.references import sign_record

pytestmark = pytest.mark.django_db(transaction=True)

HTMX = {"HTTP_HX_REQUEST": "true"}
TRIGGER = "/page-images/generate/"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def click(user, page):
    client = Client()
    client.force_login(user)
    return client.post(TRIGGER, {"ref": sign_record(page), "next": "/"}, **HTMX)


def test_the_broker_failure_is_said_once(editor, page, settings):
    from tests.conftest import celery_app

    with celery_app(f"redis://127.0.0.1:{closed_port()}/0"):
        response = click(editor, page)
    assert response.status_code == 503
    assert response.content.decode().count("could not be queued") == 1


def test_a_cache_outage_answers_503_with_the_containers_message(editor, page, settings, published):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_port()}/0",
        }
    }
    response = click(editor, page)
    assert response.status_code == 503
    html = response.content.decode()
    assert "cache is unreachable" in html
    assert 'class="page-images' in html  # the container, which the script swaps in
    assert published == []
    page.refresh_from_db()
    assert page.image_state == "empty"
