from __future__ import annotations

import pytest
from django.test import override_settings

from page_images.conf import DEFAULTS, app_settings, parse_size


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
