"""The errors' sentences: English where they are raised, translated where a check shows them."""

from __future__ import annotations

import pickle

from django.utils import translation

from page_images.exceptions import (
    InvalidSettingValueError,
    MissingDependencyError,
    PageImagesConfigurationError,
)


def test_a_missing_packages_sentence_is_english_when_raised_and_german_in_a_check():
    error = MissingDependencyError("redis", "redis")
    assert str(error) == (
        'redis is not installed. Install it with: pip install "django-page-images[redis]"'
    )
    with translation.override("de"):
        assert str(error).startswith("redis is not installed.")  # tracebacks and logs
        assert error.translated() == (
            'redis ist nicht installiert. Installieren mit: pip install "django-page-images[redis]"'
        )


def test_a_sentence_the_catalog_does_not_know_is_shown_as_written():
    error = PageImagesConfigurationError("A site's own 100% English sentence.")
    assert str(error) == "A site's own 100% English sentence."
    with translation.override("de"):
        assert error.translated() == "A site's own 100% English sentence."


def test_a_setting_values_error_is_still_a_value_error_and_survives_pickling():
    error = InvalidSettingValueError(
        "%(value)s has a side outside 16 to 8192 pixels", {"value": "'1x1'"}
    )
    assert isinstance(error, ValueError)
    with translation.override("de"):
        assert error.translated() == "'1x1' hat eine Seite außerhalb von 16 bis 8192 Pixeln"
    copy = pickle.loads(pickle.dumps(error))  # a Celery result backend pickles errors
    assert str(copy) == "'1x1' has a side outside 16 to 8192 pixels"
