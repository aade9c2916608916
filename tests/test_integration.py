"""The spine end to end: a click's service call, a real Celery worker on a real broker, the real
LiteLLM calling the fake provider over HTTP, the real database and storage.

Each test runs three ways: on Celery in eager mode (needs nothing), on a real Celery worker on
the real Redis, and on Django's tasks framework (TASK_RUNNER = "django.tasks") with
django-tasks-db's db_worker: the same tests for both runners. The editor's click comes through
each door a site may open: the trigger view and the django-ninja router (page_images.api), over
HTTP with a logged-in client, as the chip sends it.
"""

from __future__ import annotations

import pytest

from page_images.testing import Respond
from tests.support.jobs import assert_picture, generate, on_every_runner, settled, wait_for
from tests.support.web import NINJA_STATUS, NINJA_TRIGGER, TRIGGER, client_for, post
from tests.testapp.models import Page

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("worker"),
    on_every_runner,
]


def test_base64_answer(page, provider, litellm_settings):
    generate(page)
    assert_picture(page)
    (call,) = provider.requests
    assert call.prompt == page.image_text
    assert call.body["size"] == "64x64"
    assert call.body["model"] == "gpt-image-1"
    assert "response_format" not in call.body


def test_url_answer_is_downloaded(page, provider, litellm_settings):
    provider.default = Respond.url()
    generate(page)
    assert_picture(page)
    assert provider.file_requests == 1


def test_a_model_with_its_own_field_and_prompt_method(poster, provider, litellm_settings):
    generate(poster)
    assert poster.image_state == "ready"
    assert poster.artwork.name.startswith("posters/")
    assert provider.requests[0].prompt == "Harvest fair sunny"


def test_alt_text_follows_the_picture(page, provider, litellm_settings, settings):
    settings.PAGE_IMAGES = {**litellm_settings, "ALT_TEXT": {"MODEL": "openai/gpt-4o-mini"}}
    provider.push_description(Respond.text("A red square, nothing else"))
    generate(page)
    assert_picture(page)
    wait_for(lambda: Page.objects.get(pk=page.pk).image_alt)  # a real worker writes it later
    assert Page.objects.get(pk=page.pk).image_alt == "A red square, nothing else"
    (call,) = provider.description_requests
    assert call.body["model"] == "gpt-4o-mini"


@pytest.mark.parametrize("door", [TRIGGER, NINJA_TRIGGER], ids=["view", "ninja"])
def test_a_click_through_each_door_gets_its_picture(door, editor, page, provider, litellm_settings):
    client = client_for(editor)
    response = post(client, page, url=door)
    assert response.status_code == 200, response.content
    wait_for(settled(page))
    assert_picture(page)
    assert provider.requests[0].prompt == page.image_text
    # What the page re-fetches once the stream says the record changed: the picture.
    assert page.image_file.url in client.get("/page-images/fragment/", {"ref": _ref(page)}).text


def test_an_api_client_clicks_and_polls_the_status_until_the_picture(
    editor, page, provider, litellm_settings
):
    client = client_for(editor)
    response = client.post(NINJA_TRIGGER, {"ref": _ref(page)})
    assert response.status_code == 202
    status = wait_for(
        lambda: (
            (answer := client.get(NINJA_STATUS, {"ref": _ref(page)}).json())["state"] == "ready"
            and answer
        )
    )
    page.refresh_from_db()
    assert_picture(page)
    assert status["image_url"] == page.image_file.url


def _ref(page):
    from page_images.references import sign_record

    return sign_record(page)
