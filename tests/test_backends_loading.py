from __future__ import annotations

import pytest

from page_images.backends import build_backend, get_backend
from page_images.backends.local import LocalBackend
from page_images.exceptions import PageImagesConfigurationError


def test_backend_is_built_once_and_rebuilt_when_the_setting_changes(settings):
    first = get_backend()
    assert isinstance(first, LocalBackend)
    assert get_backend() is first
    settings.PAGE_IMAGES = {"OPTIONS": {"delay": 2}}
    second = get_backend()
    assert second is not first
    assert second.delay == 2


def test_errors_name_the_key_to_fix():
    with pytest.raises(
        PageImagesConfigurationError, match=r"PAGE_IMAGES\['BACKEND'\] = 'no.such.Backend'"
    ):
        build_backend("no.such.Backend", {})
    with pytest.raises(PageImagesConfigurationError, match=r"PAGE_IMAGES\['OPTIONS'\]"):
        build_backend("tests.backends.StrictBackend", {"color": "red"})
    assert build_backend("tests.backends.StrictBackend", {"colour": "red"}).options == {
        "colour": "red"
    }
