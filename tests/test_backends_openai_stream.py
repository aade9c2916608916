"""Streamed previews over real HTTP: the LiteLLM backend's OpenAI path against the fake provider,
which streams in OpenAI's wire format; the SSE reader's edge cases on a stand-in response."""

from __future__ import annotations

import base64
import io
import json
import time
from decimal import Decimal

import pytest
from PIL import Image

from page_images.backends.base import (
    ContentPolicyError,
    GenerationTimeoutError,
    ImageRequest,
    InvalidImageError,
    PermanentGenerationError,
    PreviewImage,
    ProviderAuthenticationError,
    TransientGenerationError,
)
from page_images.backends.litellm import LiteLLMBackend
from page_images.backends.openai_stream import ProviderHTTPError, _read, stream_image
from page_images.testing import FakeImageProvider, Respond, png_bytes

REQUEST = ImageRequest("A red fox at dawn", width=64, height=64, quality="low")
#: A size and quality the shipped price table knows (the fake's picture is 64x64 whatever is asked).
PRICED = ImageRequest("A red fox at dawn", width=1024, height=1024, quality="low")


@pytest.fixture
def backend(provider):
    return LiteLLMBackend(
        model="openai/gpt-image-1",
        api_base=provider.api_base,
        api_key="sk-test",
        timeout=5,
        background="opaque",
        drop_params=True,
    )


def _collect(backend, partials=2, request=REQUEST):
    previews: list[tuple[float, PreviewImage]] = []
    started = time.monotonic()
    result = backend.generate_with_previews(
        request,
        lambda preview: previews.append((time.monotonic() - started, preview)),
        partials=partials,
    )
    return result, previews, time.monotonic() - started


def _size(content: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(content)) as picture:
        return picture.size


def test_partials_then_the_picture_over_one_stream(backend, provider):
    result, previews, _ = _collect(backend, partials=2, request=PRICED)
    assert [preview.index for _, preview in previews] == [0, 1]
    assert all(preview.content_type == "image/png" for _, preview in previews)
    assert _size(previews[0][1].content) == (16, 16)  # the fake's partial: a quarter of the side
    assert _size(result.content) == (64, 64)
    assert result.model == "openai/gpt-image-1"
    assert result.metadata["streamed"] is True
    assert result.metadata["usage"]["total_tokens"] == 110
    assert isinstance(result.cost, Decimal)  # priced from the table: LiteLLM did not see the call
    (call,) = provider.requests
    assert call.body == {
        "model": "gpt-image-1",
        "prompt": REQUEST.prompt,
        "size": "1024x1024",
        "quality": "low",
        "n": 1,
        "background": "opaque",
        "partial_images": 2,
        "stream": True,
    }
    assert call.headers.get("Authorization") == "Bearer sk-test"


def test_previews_arrive_on_the_providers_schedule_not_with_the_picture(backend, provider):
    provider.latency = 1.0
    provider.partial_schedule = (0.3, 0.6)
    result, previews, total = _collect(backend, partials=3)
    assert len(previews) == 2  # the provider sends what it has, however many were asked
    first, second = previews[0][0], previews[1][0]
    assert 0.25 <= first <= 0.6, first
    assert 0.55 <= second <= 0.9, second
    assert total >= 1.0
    assert result.content.startswith(b"\x89PNG")
    assert provider.requests[0].body["partial_images"] == 3


def test_more_than_three_partials_are_asked_as_three(backend, provider):
    _collect(backend, partials=7)
    assert provider.requests[0].body["partial_images"] == 3


@pytest.mark.parametrize(
    ("model", "partials"),
    [
        ("openai/gpt-image-1", 0),  # previews off
        ("openai/dall-e-3", 2),  # a model that cannot stream
        ("azure/gpt-image-1", 2),  # a provider whose endpoint is not OpenAI's stream
    ],
)
def test_without_previews_the_call_goes_through_litellm(provider, model, partials):
    backend = LiteLLMBackend(model=model, api_base=provider.api_base, api_key="sk-test", timeout=5)
    assert backend.streams_previews is (model == "openai/gpt-image-1")
    if model.startswith("azure"):
        return  # LiteLLM's Azure route needs an api_version; the capability is what is tested
    result, previews, _ = _collect(backend, partials=partials)
    assert previews == []
    assert result.content.startswith(b"\x89PNG")
    assert "stream" not in provider.requests[0].body


def test_a_bare_model_name_streams_from_openai_itself():
    assert LiteLLMBackend(model="gpt-image-1").streams_previews
    assert not LiteLLMBackend(model="stability/sd3").streams_previews


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (Respond.rate_limited(), TransientGenerationError),
        (Respond.server_error(), TransientGenerationError),
        (Respond.bad_api_key(), ProviderAuthenticationError),
        (Respond.content_policy(), ContentPolicyError),
        (Respond.error(400, "Invalid size."), PermanentGenerationError),
        (Respond.refuse_stream(), ContentPolicyError),
        (Respond.cut_stream(), TransientGenerationError),
    ],
)
def test_errors_are_mapped_like_litellms(backend, provider, answer, error):
    provider.push(answer)
    with pytest.raises(error) as caught:
        _collect(backend, partials=1)
    assert caught.type is error


def test_the_providers_refusal_sentence_reaches_the_editor(backend, provider):
    provider.push(Respond.refuse_stream())
    with pytest.raises(ContentPolicyError) as caught:
        _collect(backend, partials=1)
    assert "safety system" in caught.value.user_message


def test_a_provider_that_is_not_there_is_a_transient_error(backend, provider):
    provider.stop()
    with pytest.raises(TransientGenerationError, match="stream"):
        _collect(backend, partials=1)


def test_a_provider_slower_than_the_timeout_is_a_timeout(provider):
    provider.latency = 3.0
    backend = LiteLLMBackend(
        model="openai/gpt-image-1", api_base=provider.api_base, api_key="sk-test", timeout=0.5
    )
    with pytest.raises(GenerationTimeoutError):
        _collect(backend, partials=1)


def test_the_key_comes_from_the_environment_when_no_option_names_it(provider, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    backend = LiteLLMBackend(model="gpt-image-1", api_base=provider.api_base, timeout=5)
    _collect(backend, partials=1)
    assert provider.requests[0].headers.get("Authorization") == "Bearer sk-env"


def test_no_key_sends_no_authorization(provider, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    backend = LiteLLMBackend(model="gpt-image-1", api_base=provider.api_base + "/", timeout=5)
    _collect(backend, partials=1, request=ImageRequest("A hen", width=64, height=64))
    call = provider.requests[0]
    assert "Authorization" not in call.headers
    assert "quality" not in call.body


class _Lines:
    """A response whose body is these SSE lines: the reader's edge cases without a server."""

    def __init__(self, *lines: str) -> None:
        self.lines = lines

    def iter_lines(self, chunk_size: int | None = 512, decode_unicode: bool = False):
        return iter(self.lines)


def _b64(content: bytes) -> str:
    return base64.b64encode(content).decode()


def _data(payload: object) -> str:
    return f"data: {json.dumps(payload)}"


def test_the_reader_skips_what_it_does_not_know_and_keeps_the_picture():
    picture = png_bytes(8, 8)
    previews: list[PreviewImage] = []
    response = _Lines(
        ": keep-alive comment",
        "",
        "data: [DONE]",
        "",
        _data(["not", "an", "object"]),
        "",
        "event: something.else",
        _data({"x": 1}),
        "",
        "event: image_generation.partial_image",
        _data({"b64_json": "not base64!", "partial_image_index": 0}),
        "",
        # No event line: the type in the data names it, as OpenAI's SDK reads it too.
        _data({"type": "image_generation.partial_image", "b64_json": _b64(picture)}),
        "",
        _data({"type": "image_generation.completed", "b64_json": _b64(picture), "usage": 3}),
    )
    result = _read(response, previews.append)  # type: ignore[arg-type]
    assert [(p.index, p.content_type) for p in previews] == [(0, None)]
    assert (result.content, result.content_type, result.usage) == (picture, None, {})


def test_a_stream_that_ends_without_the_picture_is_retried():
    response = _Lines("event: image_generation.partial_image", _data({"b64_json": ""}), "")
    with pytest.raises(TransientGenerationError, match=r"without image_generation\.completed"):
        _read(response, lambda preview: None)  # type: ignore[arg-type]


def test_a_provider_that_does_not_answer_in_time_is_a_timeout(provider):
    provider.latency = 3.0
    provider.push(Respond.server_error())  # answered (late) as one body, not a stream
    backend = LiteLLMBackend(
        model="openai/gpt-image-1", api_base=provider.api_base, api_key="sk-test", timeout=0.3
    )
    with pytest.raises(GenerationTimeoutError, match="Read timed out"):
        _collect(backend, partials=1)


def test_a_picture_that_does_not_decode_is_invalid():
    response = _Lines(_data({"type": "image_generation.completed", "b64_json": 42}), "")
    with pytest.raises(InvalidImageError):
        _read(response, lambda preview: None)  # type: ignore[arg-type]


def test_an_error_body_that_is_not_json_is_quoted_as_it_came():
    with FakeImageProvider() as provider:
        url = f"{provider.url}/nowhere"
        with pytest.raises(ProviderHTTPError) as caught:
            stream_image(url=url, api_key=None, body={}, timeout=2, on_preview=lambda p: None)
    assert caught.value.status_code == 404


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ('{"error": {"code": "oops"}}', "oops"),
        ('{"error": null}', '{"error": null}'),
        ("[1]", "[1]"),
        ("plain words", "plain words"),
    ],
)
def test_error_text_says_what_the_provider_said(body, text):
    from page_images.backends.openai_stream import _error_text

    assert _error_text(body) == text


@pytest.mark.process
def test_first_preview_within_35_percent_of_the_job_from_a_provider_in_its_own_process():
    """The issue's target at the backend: a provider streaming its first partial at 30 % of the
    job's time, in its own process (the dev server a site runs), gives the first preview to the
    worker's callback by 35 % of the time the whole picture takes."""
    import subprocess
    import sys

    from tests.servers import free_port

    port, latency = free_port(), 2.0
    command = [
        *(sys.executable, "-m", "page_images.testing", "--port", str(port)),
        *("--latency", str(latency), "--partials-at", "0.3,0.6", "--size", "64x64"),
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            assert "Fake image provider at" in server.stdout.readline()
            backend = LiteLLMBackend(
                model="openai/gpt-image-1",
                api_base=f"http://127.0.0.1:{port}/v1",
                api_key="fake",
                timeout=10,
            )
            result, previews, total = _collect(backend, partials=2)
        finally:
            server.terminate()
    assert _size(result.content) == (64, 64)
    assert [preview.index for _, preview in previews] == [0, 1]
    first = previews[0][0] / total
    assert total >= latency
    assert first <= 0.35, f"first preview at {first:.0%} of {total:.2f} s"
