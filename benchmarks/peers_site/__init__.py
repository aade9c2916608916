"""The streams target 9 runs beside ours: what a Django developer would pick instead, and the floor.

Each is served as one uvicorn worker, like ours, and follows the same records from the same Redis:

- :mod:`.eventstream_asgi`: django-eventstream 5.3 as its README sets it up (the app's URLconf
  included, ``EVENTSTREAM_REDIS`` for more than one process), behind the site's full middleware;
- :mod:`.channels_asgi`: Django Channels 4.3 with channels-redis, an ``AsyncHttpConsumer`` that
  joins one group per record, under ``RedisChannelLayer`` (the documented layer) or
  ``RedisPubSubChannelLayer`` (the one channels-redis recommends trying for fan-out);
- :mod:`.bare_asgi`: no framework, no check: the ASGI floor a stream cannot go below.
"""

from __future__ import annotations


def group_name(reference: str) -> str:
    """A record's Channels group (group names allow letters, digits, ``-``, ``_`` and ``.``)."""
    return "ref." + reference.replace(":", "_")
