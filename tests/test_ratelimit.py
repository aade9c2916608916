from __future__ import annotations

import threading
import uuid
from types import SimpleNamespace

import pytest
from django.core.cache import cache

from page_images.ratelimit import allow, parse_rate
from tests.machine import redis_url
from tests.reliability import case


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


@case(
    "requests",
    "A burst of 100 simultaneous clicks from one account against RATE_LIMIT 30/h, in Django's "
    "local-memory cache and in Django's Redis cache",
    "Exactly 30 go through; the rest get 429 'Too many images requested. Wait a minute and try "
    "again.'",
)
@pytest.mark.parametrize("backend", ["locmem", pytest.param("redis", marks=pytest.mark.redis)])
def test_the_limit_holds_under_a_concurrent_burst(settings, backend):
    if backend == "redis":
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": redis_url(),
                "KEY_PREFIX": f"page_images_test_{uuid.uuid4().hex}",
            }
        }
    settings.PAGE_IMAGES = {"RATE_LIMIT": "30/h"}
    user = SimpleNamespace(pk=uuid.uuid4().int % 10**9)
    barrier = threading.Barrier(100)
    answers: list[bool] = []
    lock = threading.Lock()

    def click() -> None:
        barrier.wait(timeout=30)
        allowed = allow(user)
        with lock:
            answers.append(allowed)

    threads = [threading.Thread(target=click) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert (answers.count(True), answers.count(False)) == (30, 70)
