"""The django-ninja router: the same click as the trigger view, through the site's NinjaAPI.

Every refusal is compared with the view's answer to the same request: one set of rules
(page_images.clicks), two doors. tests/urls.py mounts the router as a site does.
"""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.core.cache import cache
from django.test import AsyncClient, Client

from page_images.references import sign_record
from tests.servers import unused_port
from tests.support.jobs import celery_app, with_picture
from tests.support.web import HTMX, NINJA_STATUS, NINJA_TRIGGER, TRIGGER, client_for, post

pytestmark = pytest.mark.django_db(transaction=True)

DOORS = pytest.mark.parametrize("url", [TRIGGER, NINJA_TRIGGER], ids=["view", "ninja"])


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()


def api_post(client, page, **extra):
    """A click from an API client: a form post without htmx's header."""
    return client.post(NINJA_TRIGGER, {"ref": sign_record(page)}, **extra)


def test_the_openapi_schema_shows_both_operations_and_their_answers():
    schema = Client().get("/api/openapi.json").json()
    generate = schema["paths"]["/api/page-images/jobs/image/generate"]["post"]
    status = schema["paths"]["/api/page-images/jobs/image/status"]["get"]
    assert generate["tags"] == ["page images"]
    assert set(generate["responses"]) >= {"200", "202", "204", "400", "403", "429", "503"}
    body = generate["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert set(body["properties"]) >= {"ref", "prompt", "preset", "aspect_ratio", "replace"}
    # The click needs Django's session (and with it ninja's CSRF check); the status does not.
    assert generate["security"] == [{"SessionAuth": []}]
    assert schema["components"]["securitySchemes"]["SessionAuth"]["in"] == "cookie"
    assert "security" not in status
    assert [p["name"] for p in status["parameters"]] == ["ref"]
    states = schema["components"]["schemas"]["ImageStatus"]["properties"]["state"]["enum"]
    assert set(states) == {"empty", "generating", "review", "ready", "error"}


def test_an_api_client_gets_202_then_200_with_the_state(editor, page, published):
    client = client_for(editor)
    first = api_post(client, page)
    assert first.status_code == 202
    assert first.json()["state"] == "generating"
    assert first.json()["reference"] == page.image_reference
    assert first.json()["claimed_at"]
    second = api_post(client, page)  # the job runs: nothing more is queued
    assert second.status_code == 200
    assert second.json()["state"] == "generating"
    assert len(published) == 1


def test_an_htmx_chip_alone_gets_the_container_as_from_the_view(editor, page, published):
    # A chip alone is its own target (no HX-Target): no event would replace it, so the answer does.
    response = post(client_for(editor), page, url=NINJA_TRIGGER)
    assert response.status_code == 200
    assert 'data-state="generating"' in response.content.decode()
    assert len(published) == 1


def test_a_container_on_a_page_without_a_stream_gets_the_container(editor, page, published):
    # WSGI serves no event stream: a 204 would leave the chip in place for good.
    key = f"page-images-{page.image_reference.replace('.', '-').replace(':', '-')}"
    response = post(client_for(editor), page, url=NINJA_TRIGGER, HTTP_HX_TARGET=key)
    assert response.status_code == 200
    assert 'data-state="generating"' in response.content.decode()


def test_a_streamed_container_gets_204_and_its_event(editor, page, published, monkeypatch):
    from page_images import events

    sent = []
    monkeypatch.setattr(events, "notify", lambda instance: sent.append(instance.image_reference))
    client = AsyncClient()
    headers = {"HX-Request": "true", "HX-Target": "page-images-x"}  # the container's own id

    async def click():
        await client.aforce_login(editor)
        return await client.post(NINJA_TRIGGER, {"ref": sign_record(page)}, headers=headers)

    response = async_to_sync(click)()
    assert response.status_code == 204
    assert response.content == b""
    assert sent == [page.image_reference]  # the container comes by the stream
    assert len(published) == 1
    page.refresh_from_db()
    assert page.image_generating


def test_a_prompt_from_the_panel_gets_the_container_even_on_a_streamed_page(
    editor, page, configure, published
):
    # The panel's container does not listen to the stream (it would wipe out the editor's
    # typing), so a 204 would leave the panel open for good.
    configure(PROMPT_PANEL=True)
    client = AsyncClient()
    headers = {"HX-Request": "true", "HX-Target": "page-images-x"}

    async def send():
        await client.aforce_login(editor)
        data = {"ref": sign_record(page), "prompt": "A fox in the snow"}
        return await client.post(NINJA_TRIGGER, data, headers=headers)

    response = async_to_sync(send)()
    assert response.status_code == 200
    assert 'data-state="generating"' in response.content.decode()
    assert len(published) == 1


def test_the_router_checks_csrf(editor, page, published):
    client = client_for(editor, enforce_csrf_checks=True)
    response = post(client, page, url=NINJA_TRIGGER)
    assert response.status_code == 403
    assert published == []
    page.refresh_from_db()
    assert not page.image_generating
    # With the token the chip carries (the cookie's pair), the same click goes through.
    token = _csrf_token(client)
    response = client.post(
        NINJA_TRIGGER,
        {"ref": sign_record(page), "csrfmiddlewaretoken": token},
        **HTMX,
    )
    assert response.status_code == 200
    assert len(published) == 1


def test_a_site_that_mounts_the_router_without_auth_keeps_the_csrf_check(
    editor, page, published, settings
):
    # The session and CSRF check sit on the operation: an API or a mount with auth=None (or a
    # bearer token for its other endpoints) does not take them off the click.
    import types

    from django.urls import include, path
    from ninja import NinjaAPI

    from page_images.api import router

    api = NinjaAPI(urls_namespace="open", auth=None)
    api.add_router("/", router, auth=None)
    site = types.ModuleType("open_site")
    site.urlpatterns = [path("open/", api.urls), path("page-images/", include("page_images.urls"))]
    settings.ROOT_URLCONF = site
    client = client_for(editor, enforce_csrf_checks=True)
    response = client.post("/open/jobs/image/generate", {"ref": sign_record(page)}, **HTMX)
    assert response.status_code == 403
    assert published == []
    anonymous = Client().post("/open/jobs/image/generate", {"ref": sign_record(page)})
    assert anonymous.status_code == 401


def _csrf_token(client):
    """A token as a page's {% csrf_token %} gives it, with its cookie set in the client."""
    from django.conf import settings
    from django.middleware.csrf import get_token
    from django.test import RequestFactory

    page = RequestFactory().get("/")
    token = get_token(page)
    client.cookies[settings.CSRF_COOKIE_NAME] = page.META["CSRF_COOKIE"]
    return token


def test_anonymous_is_401_and_queues_nothing(page, published):
    response = api_post(Client(), page)
    assert response.status_code == 401
    assert published == []


@DOORS
def test_a_user_without_permission_is_refused_by_both_doors(reader, page, published, url):
    response = post(client_for(reader), page, url=url)
    assert response.status_code == 403
    assert "You may not generate an image for this record." in response.content.decode()
    assert published == []


def test_api_refusals_are_json_with_the_views_words(reader, editor, page, published):
    assert api_post(client_for(reader), page).json() == {
        "detail": "You may not generate an image for this record."
    }
    assert client_for(editor).post(NINJA_TRIGGER, {}).status_code == 422  # ninja's, no ref
    bad = client_for(editor).post(NINJA_TRIGGER, {"ref": "tests.page:1:forged"})
    assert (bad.status_code, bad.json()["detail"]) == (
        400,
        "This button is out of date. Reload the page.",
    )


@DOORS
def test_bad_and_gone_references_by_both_doors(editor, page, published, url):
    client = client_for(editor)
    assert post(client, "tests.page:1:forged", url=url).status_code == 400
    signed = sign_record(page)
    page.delete()
    gone = post(client, signed, url=url)
    assert gone.status_code == 404
    assert "This record no longer exists." in gone.content.decode()
    assert published == []


@DOORS
def test_the_rate_limit_is_shared_by_both_doors(editor, make_page, published, settings, url):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "RATE_LIMIT": "2/m"}
    client = client_for(editor)
    other = NINJA_TRIGGER if url == TRIGGER else TRIGGER
    codes = [
        post(client, make_page(f"text {i}"), url=u).status_code
        for i, u in enumerate([url, other, url])
    ]
    assert codes == [200, 200, 429]
    assert len(published) == 2


@DOORS
def test_a_cache_outage_is_503_by_both_doors(editor, page, settings, published, url):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{unused_port()}/0",
        }
    }
    response = post(client_for(editor), page, url=url)
    assert response.status_code == 503
    assert "cache is unreachable" in response.content.decode()
    assert published == []


@DOORS
def test_broker_down_is_503_by_both_doors(editor, page, url):
    with celery_app(f"redis://127.0.0.1:{unused_port()}/0"):
        response = post(client_for(editor), page, url=url)
    assert response.status_code == 503
    assert "could not be queued" in response.content.decode()
    page.refresh_from_db()
    assert not page.image_generating


@DOORS
def test_empty_prompt_and_oversized_body_by_both_doors(editor, make_page, published, url):
    client = client_for(editor)
    empty = post(client, make_page(""), url=url)
    assert empty.status_code == 400
    assert "no text" in empty.content.decode()
    big = client.post(url, {"ref": sign_record(make_page()), "junk": "x" * 10_000}, **HTMX)
    assert big.status_code == 400
    assert published == []


@DOORS
def test_a_refused_choice_goes_back_to_the_panel_by_both_doors(
    editor, page, configure, published, url
):
    configure(PROMPT_PANEL=True, PRESETS={"ink": {"label": "Ink", "prompt": "ink"}})
    client = client_for(editor)
    data = {"ref": sign_record(page), "prompt": "my words", "preset": "nope"}
    response = client.post(url, data, **HTMX)
    assert response.status_code == 400
    html = response.content.decode()
    assert 'data-state="compose"' in html
    assert "my words" in html
    assert published == []


def test_the_status_shows_editors_the_job_and_visitors_the_picture(editor, page, published):
    api_post(client_for(editor), page)
    ref = {"ref": sign_record(page)}
    mine = client_for(editor).get(NINJA_STATUS, ref).json()
    assert mine["state"] == "generating"
    assert mine["claimed_at"]
    theirs = Client().get(NINJA_STATUS, ref).json()
    assert theirs == {
        "reference": page.image_reference,
        "state": "empty",
        "image_url": None,
        "alt": page.get_image_alt_text(),
        "error": "",
        "claimed_at": None,
        "started_at": None,
    }


def test_the_status_of_a_picture_and_of_bad_references(page, db):
    with_picture(page)
    page.refresh_from_db()
    shown = Client().get(NINJA_STATUS, {"ref": sign_record(page)}).json()
    assert shown["state"] == "ready"
    assert shown["image_url"] == page.image_file.url
    bad = Client().get(NINJA_STATUS, {"ref": "forged"})
    assert (bad.status_code, bad.json()) == (
        400,
        {"detail": "This image is out of date. Reload the page."},
    )
    assert Client().get(NINJA_STATUS).status_code == 422  # ninja's own answer to a missing ref


def test_the_chip_posts_where_trigger_url_says(editor, page, settings):
    from django.template import Context, Template
    from django.test import RequestFactory

    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "TRIGGER_URL": "api:page_images_generate"}
    request = RequestFactory().get("/")
    request.user = editor
    html = Template("{% load page_images %}{% page_image page %}").render(
        Context({"page": page, "request": request})
    )
    assert f'hx-post="{NINJA_TRIGGER}"' in html


def test_a_trigger_url_that_names_nothing_says_which_setting(editor, page, settings):
    from django.core.exceptions import ImproperlyConfigured

    from page_images.rendering import trigger_url

    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "TRIGGER_URL": "api:nothing"}
    with pytest.raises(ImproperlyConfigured, match=r'PAGE_IMAGES\["TRIGGER_URL"\]'):
        trigger_url()


def test_without_django_ninja_the_import_names_the_extra(monkeypatch):
    import importlib
    import sys

    from page_images.exceptions import MissingDependencyError

    monkeypatch.setitem(sys.modules, "ninja", None)  # what Python does for a missing package
    monkeypatch.delitem(sys.modules, "page_images.api")  # the real module comes back after
    with pytest.raises(MissingDependencyError, match=r'pip install "django-page-images\[ninja\]"'):
        importlib.import_module("page_images.api")
