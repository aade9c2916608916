"""LiteLLMBackend against the real LiteLLM and the fake provider over HTTP."""

from __future__ import annotations

import base64
import sys
from decimal import Decimal
from types import SimpleNamespace

import httpx
import pytest

from page_images.backends.base import (
    ContentPolicyError,
    GenerationTimeoutError,
    ImageRequest,
    InvalidImageError,
    PermanentGenerationError,
    ProviderAuthenticationError,
    TransientGenerationError,
    UnsupportedAspectRatioError,
)
from page_images.backends.litellm import LiteLLMBackend, import_litellm, map_error, provider_text
from page_images.exceptions import MissingDependencyError
from page_images.testing import Respond, png_bytes

REQUEST = ImageRequest("A red fox at dawn", width=64, height=64, quality="low")


@pytest.fixture
def backend(provider, settings):
    settings.PAGE_IMAGES = {"ALLOW_LOOPBACK_DOWNLOADS": True, "DOWNLOAD_TIMEOUT": 3}
    return LiteLLMBackend(
        model="openai/gpt-image-1", api_base=provider.api_base, api_key="sk-test", timeout=2
    )


def test_base64_answer_with_cost(backend, provider):
    result = backend.generate(REQUEST)
    assert result.content.startswith(b"\x89PNG")
    assert result.model == "openai/gpt-image-1"
    assert isinstance(result.cost, Decimal)
    assert result.revised_prompt == REQUEST.prompt
    (call,) = provider.requests
    assert call.body == {
        "model": "gpt-image-1",
        "prompt": REQUEST.prompt,
        "size": "64x64",
        "quality": "low",
        "n": 1,
    }
    assert call.headers.get("Authorization", call.headers.get("authorization")) == "Bearer sk-test"


def test_url_answer_is_fetched_safely(backend, provider):
    provider.push(Respond.url(content=png_bytes(10, 10)))
    result = backend.generate(REQUEST)
    assert result.content == png_bytes(10, 10)
    assert result.content_type == "image/png"


def test_url_answer_to_a_private_address_is_refused(backend, provider):
    provider.push(Respond.url(redirect_to="http://169.254.169.254/latest/meta-data"))
    with pytest.raises(InvalidImageError):
        backend.generate(REQUEST)


def test_url_answer_needs_loopback_permission(backend, provider, settings):
    settings.PAGE_IMAGES = {}
    provider.push(Respond.url())
    with pytest.raises(InvalidImageError):
        backend.generate(REQUEST)
    assert provider.file_requests == 0


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (Respond.rate_limited(), TransientGenerationError),
        (Respond.server_error(), TransientGenerationError),
        (Respond.unavailable(), TransientGenerationError),
        (Respond.content_policy(), ContentPolicyError),
        (Respond.bad_api_key(), ProviderAuthenticationError),
        (Respond.error(400, "Invalid size"), PermanentGenerationError),
        (Respond.error(404, "No such model"), PermanentGenerationError),
        (Respond.hang(10), GenerationTimeoutError),
    ],
)
def test_errors_are_mapped(backend, provider, answer, error):
    if error is GenerationTimeoutError:
        backend.timeout = 0.5  # past it the fake is still hanging: seconds of waiting prove no more
    provider.push(answer)
    with pytest.raises(error) as caught:
        backend.generate(REQUEST)
    assert caught.value.user_message
    if error is PermanentGenerationError:
        assert not isinstance(caught.value, (ContentPolicyError, ProviderAuthenticationError))
    assert provider.generation_calls == 1, "LiteLLM must not retry on its own"


def test_connection_refused_is_transient(settings):
    backend = LiteLLMBackend(
        model="openai/gpt-image-1", api_base="http://127.0.0.1:9/v1", api_key="k", timeout=2
    )
    with pytest.raises(TransientGenerationError):
        backend.generate(REQUEST)


def test_content_policy_message_carries_the_provider_sentence(backend, provider):
    provider.push(Respond.content_policy())
    with pytest.raises(ContentPolicyError) as caught:
        backend.generate(REQUEST)
    assert caught.value.user_message.endswith("rejected as a result of our safety system.")


def test_answers_without_an_image():
    backend = LiteLLMBackend(model="m")
    with pytest.raises(PermanentGenerationError, match="without an image"):
        backend._result(SimpleNamespace(data=[]))
    with pytest.raises(PermanentGenerationError, match="without an image"):
        backend._result(SimpleNamespace(data=[SimpleNamespace(b64_json=None, url=None)]))
    with pytest.raises(InvalidImageError):
        backend._result(SimpleNamespace(data=[SimpleNamespace(b64_json="%%%not base64", url=None)]))
    ok = backend._result(
        SimpleNamespace(data=[SimpleNamespace(b64_json=base64.b64encode(b"x").decode())])
    )
    assert (ok.content, ok.cost) == (b"x", None)


def test_provider_text_strips_litellm_prefixes():
    error = Exception("litellm.BadRequestError: OpenAIException - Error code: 400 - Bad size.")
    assert provider_text(error) == "Bad size."


def test_other_exceptions_pass_through_unchanged():
    bug = ZeroDivisionError()
    assert map_error(bug) is bug


def test_missing_litellm_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "litellm", None)
    with pytest.raises(MissingDependencyError, match=r"django-page-images\[litellm\]"):
        import_litellm()


# --- Coverage gaps of the two tiers (branch `tiers`) ------------------------------------------


def test_our_own_errors_pass_through_the_mapping_unchanged():
    error = ContentPolicyError("refused")
    assert map_error(error) is error


def test_settings_the_model_does_not_accept_are_a_permanent_error_that_says_so():
    litellm = import_litellm()
    exc = litellm.exceptions.UnsupportedParamsError(
        message="size 7x7 is not supported", llm_provider="openai", model="gpt-image-1"
    )
    mapped = map_error(exc)
    assert type(mapped) is PermanentGenerationError
    assert "does not accept the site's image settings" in mapped.user_message
    assert "size 7x7" in mapped.detail


def test_check_says_which_extra_to_install_when_litellm_is_missing(monkeypatch):
    import importlib.util

    from django.utils import translation

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "litellm" else real_find_spec(name, *args),
    )
    messages = LiteLLMBackend(model="openai/gpt-image-1").check()
    assert [m.id for m in messages] == ["page_images.E020"]
    assert "django-page-images[litellm]" in messages[0].hint
    with translation.override("de"):
        (german,) = LiteLLMBackend(model="openai/gpt-image-1").check()
    assert german.msg == (
        "PAGE_IMAGES['BACKEND'] ist LiteLLMBackend, aber litellm ist nicht installiert."
    )


def test_prepare_imports_litellm_before_the_first_job(monkeypatch):
    from page_images.backends import litellm as module

    imported = []
    monkeypatch.setattr(module, "import_litellm", lambda: imported.append("litellm"))
    built = []

    class Client:
        def close(self):
            built.append("closed")

    monkeypatch.setattr(httpx, "Client", Client)
    LiteLLMBackend(model="openai/gpt-image-1").prepare()
    assert imported == ["litellm"]
    assert built == ["closed"]  # the first call's HTTP stack, imported before any job


@pytest.mark.django_db
def test_the_rate_limit_message_does_not_promise_a_retry(provider, litellm_settings):
    # Editors read it only once the job has given up: "the job will try again" would be a lie.
    from page_images.backends import get_backend
    from page_images.backends.base import ImageRequest

    provider.push(Respond.rate_limited())
    with pytest.raises(TransientGenerationError) as caught:
        get_backend().generate(ImageRequest(prompt="a fox", width=64, height=64))
    assert "will try again" not in caught.value.user_message
    assert "Try again" in caught.value.user_message


@pytest.mark.parametrize(
    ("reported", "cost"),
    [(0.04, Decimal("0.04")), ("0.167", Decimal("0.167")), (None, None), ("unknown", None)],
)
def test_a_cost_litellm_cannot_price_is_left_out_not_an_error(reported, cost):
    # LiteLLM's response_cost is whatever its price map says, for models it does not know too:
    # a picture that was made and paid for is never refused over its bookkeeping.
    backend = LiteLLMBackend(model="m")
    answer = SimpleNamespace(
        data=[SimpleNamespace(b64_json=base64.b64encode(b"x").decode())],
        _hidden_params={"response_cost": reported},
    )
    result = backend._result(answer)
    assert (result.content, result.cost) == (b"x", cost)


# Aspect ratios and variants (the editor's tools).


def three(prompt="A red fox at dawn"):
    return ImageRequest(prompt, width=64, height=64, quality="low", n=3)


@pytest.mark.parametrize(
    ("model", "ratio", "size"),
    [
        ("openai/gpt-image-1", "3:2", (1536, 1024)),
        ("gpt-image-1.5", "2:3", (1024, 1536)),
        ("openai/dall-e-3", "7:4", (1792, 1024)),
        ("dall-e-2", "1:1", (1024, 1024)),
    ],
)
def test_a_model_with_fixed_sizes_draws_a_ratio_at_its_own_size(model, ratio, size):
    assert LiteLLMBackend(model=model).size_for(ratio, (512, 512)) == size


def test_a_ratio_a_fixed_size_model_cannot_draw_says_which_it_can():
    with pytest.raises(UnsupportedAspectRatioError, match=r"dall-e-3 .* 16:9; it draws 1:1, 7:4"):
        LiteLLMBackend(model="openai/dall-e-3").size_for("16:9", (1024, 1024))


def test_a_model_that_takes_any_size_keeps_the_area():
    backend = LiteLLMBackend(model="vertex_ai/imagen-4")
    assert backend.size_for("16:9", (1024, 1024)) == (1344, 768)


def test_variants_are_one_call_with_n_where_the_model_allows_it(backend, provider):
    results = backend.generate_variants(three())
    (call,) = provider.requests
    assert call.body["n"] == 3
    assert len({result.content for result in results}) == 3  # three pictures, not one thrice
    assert all(result.content.startswith(b"\x89PNG") for result in results)
    costs = [result.cost for result in results]
    assert len(set(costs)) == 1  # the call's cost, shared out
    assert all(isinstance(cost, Decimal) and cost > 0 for cost in costs)


def test_one_variant_is_one_plain_call(backend, provider):
    (result,) = backend.generate_variants(ImageRequest("A fox", width=64, height=64))
    assert result.content.startswith(b"\x89PNG")
    assert [call.body["n"] for call in provider.requests] == [1]


def test_variants_of_a_one_per_call_model_are_separate_calls(provider, settings):
    settings.PAGE_IMAGES = {"ALLOW_LOOPBACK_DOWNLOADS": True}
    backend = LiteLLMBackend(model="openai/dall-e-3", api_base=provider.api_base, api_key="sk")
    results = backend.generate_variants(three())
    assert [call.body["n"] for call in provider.requests] == [1, 1, 1]
    assert len(results) == 3


def test_a_provider_that_sends_fewer_pictures_than_asked_gives_what_it_sent(backend, provider):
    provider.push(Respond.b64(content=png_bytes(8, 8)))
    results = backend.generate_variants(three())
    assert [result.content for result in results] == [png_bytes(8, 8)] * 3
    answer = SimpleNamespace(data=[SimpleNamespace(b64_json=base64.b64encode(b"x").decode())])
    assert len(backend._results(answer, 3)) == 1


def describer(provider, **options):
    return LiteLLMBackend(
        model="openai/gpt-4o-mini",
        api_base=provider.api_base,
        api_key="sk-test",
        timeout=2,
        **options,
    )


def test_describe_sends_one_vision_message(provider):
    backend = describer(provider, style="vivid", background="transparent", user="site-1")
    provider.push_description(Respond.text("A fox asleep"))
    text = backend.describe(png_bytes(8, 8), "image/png", language="de", prompt="Auf Deutsch")
    assert text == "A fox asleep"
    (call,) = provider.description_requests
    assert call.body["model"] == "gpt-4o-mini"
    assert call.body["user"] == "site-1"  # provider options pass, the image-only ones do not
    assert "style" not in call.body
    assert "background" not in call.body
    assert call.text == "Auf Deutsch"
    (url,) = call.image_urls
    assert base64.b64decode(url.removeprefix("data:image/png;base64,")) == png_bytes(8, 8)
    assert call.headers.get("Authorization", call.headers.get("authorization")) == "Bearer sk-test"
    assert provider.generation_calls == 0


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (Respond.rate_limited(), TransientGenerationError),
        (Respond.server_error(), TransientGenerationError),
        (Respond.content_policy(), ContentPolicyError),
        (Respond.bad_api_key(), ProviderAuthenticationError),
        (Respond.text(""), PermanentGenerationError),
    ],
)
def test_describe_errors_are_mapped(provider, answer, error):
    provider.push_description(answer)
    with pytest.raises(error):
        describer(provider).describe(png_bytes(), "image/png", language="en", prompt="Describe")
    assert len(provider.description_requests) == 1  # max_retries=0: Celery or nobody retries


def test_describe_times_out(provider):
    provider.push_description(Respond.hang(5))
    backend = describer(provider)
    backend.timeout = 0.3
    with pytest.raises(GenerationTimeoutError):
        backend.describe(png_bytes(), "image/png", language="en", prompt="Describe")


def test_describe_without_choices_is_permanent(monkeypatch):
    litellm = import_litellm()
    monkeypatch.setattr(litellm, "completion", lambda **kwargs: SimpleNamespace(choices=[]))
    with pytest.raises(PermanentGenerationError):
        LiteLLMBackend(model="openai/gpt-4o-mini").describe(
            png_bytes(), "image/png", language="en", prompt="Describe"
        )
