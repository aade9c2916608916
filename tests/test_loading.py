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


def test_a_changed_setting_closes_what_was_built_before_building_anew():
    """A bus holds a pooled connection: dropped unclosed, the garbage collector closes it later
    with a ResourceWarning (CI's full tier failed at exit on one)."""
    from django.test import override_settings

    from page_images.loading import Configured

    class Holder:
        closed = 0

        def close(self) -> None:
            Holder.closed += 1

    built = Configured(Holder)
    first = built.get()
    assert built.get() is first
    with override_settings(PAGE_IMAGES={"SIZE": "64x64"}):
        assert Holder.closed == 1
        assert built.get() is not first
    assert Holder.closed == 2  # and once more when the override ends
    plain = Configured(object)  # what has no close() is simply dropped
    plain.get()
    plain.reset()
