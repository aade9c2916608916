from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.core.cache import cache

from page_images.ratelimit import allow, parse_rate


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()


def test_parse_rate():
    assert parse_rate("30/m") == (30, 60)
    assert parse_rate("5/s") == (5, 1)
    assert parse_rate("100/h") == (100, 3600)
    for bad in ("", "30", "x/m", "0/m", "3/d"):
        with pytest.raises(ValueError, match="N/s"):
            parse_rate(bad)


def test_limit_per_user(settings):
    settings.PAGE_IMAGES = {"RATE_LIMIT": "3/h"}
    alice, bob = SimpleNamespace(pk=1), SimpleNamespace(pk=2)
    assert [allow(alice) for _ in range(5)] == [True, True, True, False, False]
    assert allow(bob)


def test_no_limit(settings):
    settings.PAGE_IMAGES = {"RATE_LIMIT": None}
    assert all(allow(SimpleNamespace(pk=1)) for _ in range(100))
