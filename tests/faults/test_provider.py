"""Provider faults through the whole stack: a real Celery worker on a real broker (in-memory and
Redis), the real LiteLLM calling the fake provider over HTTP, the real database and storage.

Each fault must end with the record in a state the editor can read and retry, and the retry must
then work. Each runs on Celery and on Django's tasks framework with a real db_worker alike
(``on_every_runner``).
"""

from __future__ import annotations

import pytest

from page_images.testing import Respond
from tests.reliability import case
from tests.support.jobs import assert_picture, generate, on_every_runner

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("worker"),
    on_every_runner,
]


@case(
    "provider",
    "A burst of 429 then 500 answers",
    "The chip keeps spinning while the job retries with back-off; then the picture appears.",
)
def test_rate_limit_then_server_error_then_success(page, provider, litellm_settings):
    provider.push(Respond.rate_limited(), Respond.server_error())
    generate(page)
    assert_picture(page)
    assert provider.generation_calls == 3


@case(
    "provider",
    "503 on every attempt",
    "After MAX_RETRIES retries: 'The image service is busy or unreachable. Try again in a "
    "moment.' and the chip again.",
)
def test_unavailable_every_time_gives_up_readably(page, provider, litellm_settings):
    provider.default = Respond.unavailable()
    generate(page)
    assert page.image_state == "error"
    assert "try again" in page.image_error.lower()
    assert provider.generation_calls == 1 + litellm_settings["MAX_RETRIES"]
    provider.default = Respond.b64()
    generate(page)
    assert_picture(page)


@case(
    "provider",
    "400 content-policy refusal",
    "At once, no retry: 'The image service refused this text under its content policy…' with "
    "the provider's reason.",
)
def test_content_policy_fails_at_once(page, provider, litellm_settings):
    provider.push(Respond.content_policy())
    generate(page)
    assert page.image_state == "error"
    assert "content policy" in page.image_error
    assert "safety system" in page.image_error
    assert provider.generation_calls == 1


@case(
    "provider",
    "401 wrong API key",
    "At once, no retry: 'The image service rejected the API key. Ask the site's administrator "
    "to check it.'",
)
def test_bad_api_key_fails_at_once_and_says_so(page, provider, litellm_settings):
    provider.push(Respond.bad_api_key())
    generate(page)
    assert "API key" in page.image_error
    assert provider.generation_calls == 1


@case(
    "provider",
    "The provider hangs past the request deadline",
    "'The image service took too long to answer. Try again.'",
)
def test_provider_hangs_past_the_deadline(page, provider, litellm_settings, settings):
    # A one-second request deadline: the fake hangs for 30, so the deadline is what ends it.
    options = {**litellm_settings["OPTIONS"], "timeout": 1}
    settings.PAGE_IMAGES = {**litellm_settings, "OPTIONS": options, "MAX_RETRIES": 0}
    provider.push(Respond.hang(30))
    generate(page)
    assert page.image_state == "error"
    assert "too long" in page.image_error


@case(
    "provider-bytes",
    "Bytes that are not an image, through the whole stack",
    "'The image service sent back something that is not a picture.'; nothing stored.",
)
@case(
    "provider-bytes",
    "More bytes than MAX_BYTES, through the whole stack",
    "'The picture is larger than this site accepts.'; nothing stored.",
)
@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (Respond.bad_bytes(), "something that is not a picture"),
        (Respond.oversize(200_000), "larger than this site accepts"),
    ],
)
def test_bad_bytes_are_refused(page, provider, litellm_settings, settings, answer, message):
    settings.PAGE_IMAGES = {**litellm_settings, "MAX_BYTES": 100_000}
    provider.push(answer)
    generate(page)
    assert page.image_state == "error"
    assert message in page.image_error
    assert not page.image


@case(
    "provider",
    "Generating again after a failure",
    "The error goes away and the picture appears.",
)
def test_after_every_failure_the_record_can_be_generated_again(page, provider, litellm_settings):
    provider.push(Respond.content_policy())
    generate(page)
    assert page.image_state == "error"
    generate(page)
    assert_picture(page)
    assert page.image_error == ""
