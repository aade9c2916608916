"""The price table: shipped defaults, a site's own prices over them, and the job's recorded cost."""

from __future__ import annotations

from decimal import Decimal

import pytest

from page_images import pricing, queueing, tasks
from page_images.history import Generation
from page_images.specs import GenerationSpec
from tests.backends import ScriptedBackend


@pytest.mark.parametrize(
    ("model", "size", "quality", "expected"),
    [
        ("gpt-image-1", "1024x1024", "low", "0.011"),
        ("openai/gpt-image-1", "1536x1024", "high", "0.25"),
        ("gpt-image-1", "1024x1536", None, "0.25"),  # "auto" is priced as high
        ("openai/gpt-image-1-mini", "1024x1024", "medium", "0.011"),
        ("azure/dall-e-3", "1792x1024", "hd", "0.120"),
        ("dall-e-3", "1024x1024", None, "0.040"),
        ("dall-e-2", "512x512", None, "0.018"),
        ("dall-e-2", "512x512", "whatever", "0.018"),  # one price per size
        ("local", "64x64", None, "0"),
    ],
)
def test_shipped_prices(model, size, quality, expected):
    assert pricing.price(model, size, quality) == Decimal(expected)


@pytest.mark.parametrize(
    ("model", "size", "quality"),
    [
        ("gpt-image-1", "800x600", "low"),  # a size OpenAI does not draw
        ("gpt-image-1", "1024x1024", "ultra"),
        ("dall-e-2", "2048x2048", None),
        ("imagen-4", "1024x1024", None),
        ("", "1024x1024", None),
    ],
)
def test_unknown_is_none_never_a_guess(model, size, quality):
    assert pricing.price(model, size, quality) is None


def test_n_pictures_and_the_local_backend(settings):
    assert pricing.price("gpt-image-1", "1024x1024", "medium", 3) == Decimal("0.126")
    assert pricing.price("gpt-image-1", "1024x1024", "medium", 0) == Decimal(0)
    assert pricing.price("anything", "1x1", None, 5, backend=pricing.LOCAL_BACKEND) == Decimal(0)


def test_a_sites_prices_replace_a_models_entry_and_add_models(settings):
    settings.PAGE_IMAGES = {
        "PRICES": {
            "gpt-image-1": {"*": "0.10"},  # a negotiated flat price
            "vertex_ai/imagen-4": {"1024x1024": {"*": 0.04}},
            "flux": 0.03,
            "broken": {"1024x1024": "free"},
        }
    }
    assert pricing.price("openai/gpt-image-1", "1536x1024", "high") == Decimal("0.10")
    assert pricing.price("vertex_ai/imagen-4", "1024x1024", "standard") == Decimal("0.04")
    assert pricing.price("imagen-4", "1024x1024", None) is None  # listed with its prefix only
    assert pricing.price("together/flux", "512x512", None, 2) == Decimal("0.06")
    assert pricing.price("broken", "1024x1024", None) is None  # E075 says so at start-up
    assert pricing.price("dall-e-2", "256x256", None) == Decimal("0.016")  # the rest stays


def test_estimate_of_a_spec_and_of_the_settings(settings):
    settings.PAGE_IMAGES = {
        "BACKEND": "page_images.backends.litellm.LiteLLMBackend",
        "OPTIONS": {"model": "openai/gpt-image-1"},
        "SIZE": "1024x1024",
        "QUALITY": "low",
        "VARIANTS": 2,
        "PRESETS": {"poster": {"size": "1024x1536", "quality": "high"}},
    }
    spec = GenerationSpec(prompt="p", subject="p", size="1536x1024", quality="medium")
    assert pricing.estimate(spec) == Decimal("0.063")
    assert pricing.estimate(spec, 10) == Decimal("0.630")
    assert pricing.estimate() == Decimal("0.022")  # SIZE, QUALITY, two variants
    assert pricing.estimate(n=100, preset="poster") == Decimal("50.00")
    settings.PAGE_IMAGES = {}  # the LocalBackend
    assert pricing.estimate(n=1000) == Decimal(0)


def test_to_decimal():
    assert pricing.to_decimal("0.04") == Decimal("0.04")
    assert pricing.to_decimal(0.1) == Decimal("0.1")
    for bad in (True, "free", "NaN", "-1", None):
        with pytest.raises(ValueError, match="amount of money"):
            pricing.to_decimal(bad)


def test_table_problems():
    assert pricing.table_problems(pricing.DEFAULT_PRICES) == []
    assert pricing.table_problems(["gpt-image-1"]) == [" must be a dict of model names, not list"]
    assert pricing.table_problems({"m": {"1x1": {"low": {"deeper": "1"}}, "2x2": "-1"}}) == [
        "['m']['1x1']['low'] = {'deeper': '1'} is not a price in USD, such as '0.04'",
        "['m']['2x2'] = '-1' is not a price in USD, such as '0.04'",
    ]


@pytest.mark.django_db(transaction=True)
def test_the_job_records_our_price_beside_the_providers(page, settings, published):
    settings.PAGE_IMAGES = {
        "BACKEND": "tests.backends.ScriptedBackend",
        "SIZE": "32x32",
        "VARIANTS": 2,
        "PRICES": {"scripted": {"32x32": "0.05"}},
    }
    ScriptedBackend.reset()
    token = queueing.request_generation(page)
    job = tasks.ImageJob(label=page._meta.label, pk=str(page.pk), token=token)
    tasks.generate_image.apply(args=(job.model_dump(mode="json"),))
    row = Generation.objects.get(token=token)
    assert row.status == Generation.Status.REVIEW  # two candidates
    assert row.cost == Decimal("0.10")
    assert row.provider_cost is None  # the scripted backend reports none
    # At the click the options named no model, so there was nothing to price it by.
    assert row.estimated_cost is None


@pytest.mark.django_db(transaction=True)
def test_a_failed_job_is_not_charged(page, settings, published):
    from page_images.exceptions import ContentPolicyError

    settings.PAGE_IMAGES = {"BACKEND": "tests.backends.ScriptedBackend", "SIZE": "32x32"}
    ScriptedBackend.reset(ContentPolicyError())
    token = queueing.request_generation(page)
    job = tasks.ImageJob(label=page._meta.label, pk=str(page.pk), token=token)
    tasks.generate_image.apply(args=(job.model_dump(mode="json"),))
    row = Generation.objects.get(token=token)
    assert row.status == Generation.Status.FAILED
    assert row.cost is None
