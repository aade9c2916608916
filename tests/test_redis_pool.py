from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis
from django.core.cache import caches

from page_images.redis_pool import SharedConnectionPool
from tests.machine import redis_url


def _cache_settings(
    settings: Any, url: str, pool_class: str | None, client_name: str = "page_images_test"
) -> None:
    # The client name lets a test count its own connections on a server others use too.
    options: dict[str, str] = {"client_name": client_name}
    if pool_class:
        options["pool_class"] = pool_class
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "clicks": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": f"page_images_test_{uuid.uuid4().hex}",
            "OPTIONS": options,
        },
    }


def _pool(cache: Any) -> Any:
    return cache._cache.get_client(write=True).connection_pool


def test_one_pool_per_server_and_options():
    first = SharedConnectionPool.from_url("redis://127.0.0.1:6379/3", socket_timeout=2)
    assert SharedConnectionPool.from_url("redis://127.0.0.1:6379/3", socket_timeout=2) is first
    assert SharedConnectionPool.from_url("redis://127.0.0.1:6379/4", socket_timeout=2) is not first
    assert SharedConnectionPool.from_url("redis://127.0.0.1:6379/3", socket_timeout=5) is not first


def test_every_cache_object_of_the_process_shares_the_pool(settings):
    # What ASGI does: a new cache object for each request's context.
    _cache_settings(
        settings, "redis://127.0.0.1:6379/3", "page_images.redis_pool.SharedConnectionPool"
    )
    assert _pool(caches.create_connection("clicks")) is _pool(caches.create_connection("clicks"))


@pytest.mark.redis
@pytest.mark.parametrize(
    ("pool_class", "most_connections"),
    [("page_images.redis_pool.SharedConnectionPool", 1), (None, 50)],
    ids=["shared", "django-default"],
)
def test_counting_clicks_from_fresh_cache_objects_opens_one_connection(
    settings, pool_class, most_connections
):
    # The default row shows what the class is for, and that this test can tell the difference.
    url = redis_url()
    name = f"page_images_test_{uuid.uuid4().hex[:12]}"
    _cache_settings(settings, url, pool_class, client_name=name)
    requests = []  # kept alive, as the requests of a busy server are
    try:
        for _ in range(50):
            cache = caches.create_connection("clicks")
            cache.add("clicks", 0)
            cache.incr("clicks")
            requests.append(cache)
        with redis.Redis.from_url(url) as server:
            opened = sum(1 for client in server.client_list() if client["name"] == name)
    finally:
        for cache in requests:  # no socket left for the garbage collector to warn about
            _pool(cache).disconnect()
    if pool_class:
        assert opened <= most_connections
    else:
        assert opened >= most_connections
