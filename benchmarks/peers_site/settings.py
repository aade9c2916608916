"""The benchmark site's settings plus what the peers' documentation asks for.

``BENCH_CHANNEL_LAYER`` picks the Channels layer: ``redis`` (``RedisChannelLayer``, the one the
Channels tutorial configures) or ``pubsub`` (``RedisPubSubChannelLayer``). ``BENCH_CHANNEL_POOL``
raises the layer's Redis connection pool past redis-py's default of 100, which
``RedisChannelLayer`` outgrows (``MaxConnectionsError``) when a hundred consumers join their
groups at once.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from benchmarks.settings import *  # noqa: F403
from benchmarks.settings import INSTALLED_APPS, REDIS_URL

INSTALLED_APPS = [*INSTALLED_APPS, "django_eventstream", "channels"]
ROOT_URLCONF = "benchmarks.peers_site.urls"
ASGI_APPLICATION = "benchmarks.peers_site.channels_asgi.application"

_redis = urlsplit(REDIS_URL)
# django-eventstream's README: "set EVENTSTREAM_REDIS" so that any process can send events.
EVENTSTREAM_REDIS = {
    "host": _redis.hostname,
    "port": _redis.port or 6379,
    "db": int(_redis.path.strip("/") or 0),
}

_LAYERS = {
    "redis": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": _LAYERS[os.environ.get("BENCH_CHANNEL_LAYER", "redis")],
        "CONFIG": {
            "hosts": [
                {"address": REDIS_URL, "max_connections": int(os.environ["BENCH_CHANNEL_POOL"])}
                if os.environ.get("BENCH_CHANNEL_POOL")
                else REDIS_URL
            ],
            # Each contender its own, as every server of target 9 is up at once.
            "prefix": os.environ.get("BENCH_CHANNEL_PREFIX", "asgi"),
        },
    }
}
