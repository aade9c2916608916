from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from page_images.exceptions import PageImagesConfigurationError
from page_images.models import image_generating_models, image_upload_to
from tests.testapp.models import Note, Page, Poster


def field_names(model):
    return {field.name for field in model._meta.get_fields()}


def test_mixin_adds_the_seed_fields_and_the_bookkeeping():
    assert {
        "image",
        "image_generating",
        "image_claimed_at",
        "image_claim_token",
        "image_error",
    } <= field_names(Page)


def test_a_model_with_its_own_image_field_gets_no_second_one():
    assert "image" not in field_names(Poster)
    assert "artwork" in field_names(Poster)


def test_only_mixin_models_are_addressable():
    models = image_generating_models()
    assert Page in models
    assert Poster in models
    assert Note not in models


def test_prompt_from_a_field(make_page):
    assert make_page("  A lighthouse at night  ").get_image_prompt() == "A lighthouse at night"
    assert make_page("").get_image_prompt() == ""


def test_prompt_from_a_method(poster):
    assert poster.get_image_prompt() == "Harvest fair sunny"


def test_a_model_without_a_prompt_source_says_how_to_fix_it(page, monkeypatch):
    monkeypatch.setattr(Page, "image_prompt_field", None)
    with pytest.raises(PageImagesConfigurationError, match="image_prompt_field"):
        page.get_image_prompt()


def test_channel_and_reference(page, poster):
    assert page.get_image_channel() == "fox-channel"
    assert poster.get_image_channel() == "testapp.poster"
    assert page.image_reference == f"testapp.page:{page.pk}"


def test_state(page):
    assert page.image_state == "empty"
    page.image_error = "refused"
    assert page.image_state == "error"
    page.image_generating = True
    page.image_claimed_at = timezone.now()
    assert page.image_state == "generating"
    page.image_claimed_at = None  # a flag with no claim behind it: no job will ever end it
    assert page.image_state == "error"
    page.image_generating = False
    page.image = "page_images/x.png"
    assert page.image_state == "ready"


def test_an_idle_record_has_no_job_deadline_and_no_lost_job(page, settings):
    settings.PAGE_IMAGES = {"CLAIM_TIMEOUT": 60, "QUEUE_TIMEOUT": 3600}
    assert (page.image_job_deadline, page.image_job_lost) == (None, False)
    page.image_error = "Refused"  # a failed job leaves an error, not a deadline
    assert (page.image_job_deadline, page.image_job_lost) == (None, False)
    page.image_generating, page.image_claimed_at = True, timezone.now()
    assert page.image_job_deadline == page.image_claimed_at + timedelta(seconds=3600)
    page.image_started_at = page.image_claimed_at
    assert page.image_job_deadline == page.image_started_at + timedelta(seconds=60)


def test_upload_to_keeps_models_apart(page, settings):
    settings.PAGE_IMAGES = {"UPLOAD_TO": "art"}
    assert image_upload_to(page, "1.png") == "art/testapp/page/1.png"


def test_alt_text_is_empty_when_the_model_has_no_prompt_source(page, monkeypatch):
    monkeypatch.setattr(Page, "image_prompt_field", None)
    assert page.get_image_alt_text() == ""
