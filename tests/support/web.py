"""The chip's click as the trigger view receives it: a logged-in client and an htmx POST."""

from __future__ import annotations

from typing import Any

from django.test import Client

from page_images.references import sign_record

HTMX = {"HTTP_HX_REQUEST": "true"}
TRIGGER = "/page-images/generate/"
#: The same click through the django-ninja router (tests/urls.py mounts it under /api/).
NINJA_TRIGGER = "/api/page-images/jobs/image/generate"
NINJA_STATUS = "/api/page-images/jobs/image/status"


def client_for(user: Any, **kwargs: Any) -> Client:
    """A test client logged in as ``user`` (anonymous for None)."""
    client = Client(**kwargs)
    if user is not None:
        client.force_login(user)
    return client


def post(client: Client, page: Any, url: str = TRIGGER, **extra: Any) -> Any:
    """Click the chip of ``page`` (a record, or a reference string as a browser might send)
    through ``url``: the trigger view, or the ninja router's NINJA_TRIGGER."""
    data = {"ref": sign_record(page) if not isinstance(page, str) else page, "next": "/stories/"}
    return client.post(url, data, **{**HTMX, **extra})
