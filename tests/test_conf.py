from __future__ import annotations

import pytest
from django.test import override_settings

from page_images.conf import DEFAULTS, app_settings, parse_ratio, parse_size


def test_defaults_apply_when_the_setting_is_absent(settings):
    del settings.PAGE_IMAGES
    assert DEFAULTS["BACKEND"] == app_settings.BACKEND
    assert app_settings.SIZE == "1024x1024"
    assert app_settings.QUALITY is None
    assert app_settings.ALLOWED_FORMATS == ("PNG", "JPEG", "WEBP")


def test_settings_are_read_on_every_access():
    with override_settings(PAGE_IMAGES={"SIZE": "512x256", "MAX_RETRIES": 7, "QUEUE": "images"}):
        assert app_settings.SIZE == "512x256"
        assert app_settings.MAX_RETRIES == 7
        assert app_settings.QUEUE == "images"
    assert app_settings.SIZE == "256x256"
    assert app_settings.QUEUE is None


def test_upload_to_is_trimmed_of_slashes(settings):
    settings.PAGE_IMAGES = {"UPLOAD_TO": "/art/"}
    assert app_settings.UPLOAD_TO == "art"


@pytest.mark.parametrize(
    ("text", "size"), [("1024x1024", (1024, 1024)), ("1536X1024", (1536, 1024))]
)
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "text", ["1024", "x", "axb", "1024x", "0x10", "9000x10", "-5x5", "10 x 10"]
)
def test_parse_size_refuses_nonsense(text):
    with pytest.raises(ValueError, match=r"WIDTHxHEIGHT|outside"):
        parse_size(text)


def test_the_editors_tools_are_off_by_default(settings):
    del settings.PAGE_IMAGES
    assert not app_settings.PROMPT_PANEL
    assert app_settings.PROMPT_TEMPLATE is None
    assert app_settings.MAX_PROMPT_LENGTH == 4000
    assert app_settings.PRESETS == {}
    assert app_settings.ASPECT_RATIOS == ()
    assert app_settings.VARIANTS == 1
    assert not app_settings.REVIEW
    assert not app_settings.REGENERATE
    assert app_settings.KEEP_PICTURES == 5


def test_the_editors_tools_read_their_settings(settings):
    settings.PAGE_IMAGES = {
        "PROMPT_PANEL": 1,
        "PROMPT_TEMPLATE": "Ink drawing of {prompt}",
        "MAX_PROMPT_LENGTH": "500",
        "PRESETS": {"ink": {"prompt": "In ink."}},
        "ASPECT_RATIOS": ["1:1", "3:2"],
        "VARIANTS": "3",
        "REVIEW": True,
        "REGENERATE": True,
        "KEEP_PICTURES": None,
    }
    assert app_settings.PROMPT_PANEL is True
    assert app_settings.PROMPT_TEMPLATE == "Ink drawing of {prompt}"
    assert app_settings.MAX_PROMPT_LENGTH == 500
    assert app_settings.PRESETS == {"ink": {"prompt": "In ink."}}
    assert app_settings.ASPECT_RATIOS == ("1:1", "3:2")
    assert (app_settings.VARIANTS, app_settings.REVIEW, app_settings.REGENERATE) == (3, True, True)
    assert app_settings.KEEP_PICTURES is None


@pytest.mark.parametrize(("text", "ratio"), [("3:2", (3, 2)), ("1:1", (1, 1)), ("16:9", (16, 9))])
def test_parse_ratio(text, ratio):
    assert parse_ratio(text) == ratio


@pytest.mark.parametrize("text", ["3/2", "3:", ":2", "0:1", "1:0", "a:b", "-1:2", "1.5:1", ""])
def test_parse_ratio_refuses_nonsense(text):
    with pytest.raises(ValueError, match="not an aspect ratio"):
        parse_ratio(text)


def test_previews_are_off_unless_asked(settings):
    del settings.PAGE_IMAGES
    assert app_settings.PREVIEWS == 0
    settings.PAGE_IMAGES = {"PREVIEWS": "2"}
    assert app_settings.PREVIEWS == 2
