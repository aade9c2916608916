"""The spine end to end: a click's service call, a real Celery worker on a real broker, the real
LiteLLM calling the fake provider over HTTP, the real database and storage.

Each test runs twice: on Celery's in-memory transport (needs nothing) and on the real Redis.
"""

from __future__ import annotations

import pytest
from PIL import Image

from page_images import services
from page_images.testing import Respond
from tests.conftest import settled, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker")]


def generate(page):
    assert services.request_generation(page) is not None
    wait_for(settled(page))
    return page


def assert_picture(page, size=(64, 64)):
    assert page.image_state == "ready", page.image_error
    with Image.open(page.image.path) as picture:
        assert picture.size == size


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


def test_rate_limit_then_success(page, provider, litellm_settings):
    provider.push(Respond.rate_limited(), Respond.server_error())
    generate(page)
    assert_picture(page)
    assert provider.generation_calls == 3


def test_rate_limited_every_time_gives_up_readably(page, provider, litellm_settings):
    provider.default = Respond.unavailable()
    generate(page)
    assert page.image_state == "error"
    assert "try" in page.image_error.lower()
    assert provider.generation_calls == 1 + litellm_settings["MAX_RETRIES"]


def test_content_policy_fails_at_once(page, provider, litellm_settings):
    provider.push(Respond.content_policy())
    generate(page)
    assert page.image_state == "error"
    assert "content policy" in page.image_error
    assert "safety system" in page.image_error
    assert provider.generation_calls == 1


def test_bad_api_key_fails_at_once_and_says_so(page, provider, litellm_settings):
    provider.push(Respond.bad_api_key())
    generate(page)
    assert "API key" in page.image_error
    assert provider.generation_calls == 1


def test_provider_timeout(page, provider, litellm_settings, settings):
    settings.PAGE_IMAGES = {**litellm_settings, "MAX_RETRIES": 0}
    provider.push(Respond.hang(30))
    generate(page)
    assert page.image_state == "error"
    assert "too long" in page.image_error


@pytest.mark.parametrize("answer", [Respond.bad_bytes(), Respond.oversize(200_000)])
def test_bad_bytes_are_refused(page, provider, litellm_settings, settings, answer):
    settings.PAGE_IMAGES = {**litellm_settings, "MAX_BYTES": 100_000}
    provider.push(answer)
    generate(page)
    assert page.image_state == "error"
    assert not page.image


def test_after_every_failure_the_record_can_be_generated_again(page, provider, litellm_settings):
    provider.push(Respond.content_policy())
    generate(page)
    assert page.image_state == "error"
    generate(page)
    assert_picture(page)
    assert page.image_error == ""


def test_a_model_with_its_own_field_and_prompt_method(poster, provider, litellm_settings):
    generate(poster)
    assert poster.image_state == "ready"
    assert poster.artwork.name.startswith("posters/")
    assert provider.requests[0].prompt == "Harvest fair sunny"
