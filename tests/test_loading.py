from __future__ import annotations

import pytest

from page_images.backends.base import BaseBackend
from page_images.exceptions import PageImagesConfigurationError
from page_images.loading import build
from tests.backends import StrictBackend


def test_builds_with_options():
    backend = build("PAGE_IMAGES", "tests.backends.StrictBackend", {"colour": "red"}, BaseBackend)
    assert isinstance(backend, StrictBackend)
    assert backend.options == {"colour": "red"}


@pytest.mark.parametrize(
    ("path", "options", "message"),
    [
        ("no.such.Thing", {}, r"X\['BACKEND'\] = 'no.such.Thing' could not be imported"),
        ("tests.backends.png_bytes", {}, r"is not a subclass of page_images.backends.base"),
        ("page_images.conf.PageImagesSettings", {}, r"is not a subclass"),
        ("tests.backends.StrictBackend", {"color": "red"}, r"X\['OPTIONS'\] do not suit"),
    ],
)
def test_errors_name_the_key(path, options, message):
    with pytest.raises(PageImagesConfigurationError, match=message):
        build("X", path, options, BaseBackend)
