"""Django Channels: an ``AsyncHttpConsumer`` streaming SSE, one channel-layer group per record.

Routed as the Channels docs route HTTP consumers (``ProtocolTypeRouter`` → ``URLRouter``, Django's
application for every other path). The consumer is what the docs' long-poll and SSE examples grow
into once it must stay open for events: ``handle`` would end the response when it returns (and
``AsyncHttpConsumer.http_request`` then stops the consumer), so the request starts the stream and
the consumer lives until ``http.disconnect``, leaving its groups there.

``BENCH_CHANNELS_GATHER=1`` joins the ten groups concurrently instead of one after the other: the
one tuning of the consumer that shortens a connect (ten Redis round trips in flight at once).
"""

from __future__ import annotations

import asyncio
import os
from urllib.parse import parse_qs

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.peers_site.settings")

from django.core.asgi import get_asgi_application

django_application = get_asgi_application()

from channels.generic.http import AsyncHttpConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path, re_path  # noqa: E402

from benchmarks.peers_site import group_name  # noqa: E402

GATHER = os.environ.get("BENCH_CHANNELS_GATHER") == "1"


class RecordEvents(AsyncHttpConsumer):
    """``GET /events/?refs=a,b,c``: ``ready`` once subscribed, then ``changed`` per event."""

    joined: tuple[str, ...] = ()

    async def http_request(self, message):
        if message.get("more_body"):
            return
        query = parse_qs(self.scope["query_string"].decode("latin-1"))
        references = [r for r in query.get("refs", [""])[0].split(",") if r]
        self.joined = tuple(group_name(r) for r in references)
        await self.send_headers(
            headers=[(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        )
        if GATHER:
            await asyncio.gather(
                *(self.channel_layer.group_add(g, self.channel_name) for g in self.joined)
            )
        else:
            for group in self.joined:
                await self.channel_layer.group_add(group, self.channel_name)
        await self.send_body(b"event: ready\ndata: \n\n", more_body=True)

    async def changed(self, event):
        frame = f"event: changed\ndata: {event['ref']}\n\n"
        await self.send_body(frame.encode(), more_body=True)

    async def disconnect(self):
        for group in self.joined:
            await self.channel_layer.group_discard(group, self.channel_name)


application = ProtocolTypeRouter(
    {"http": URLRouter([path("events/", RecordEvents.as_asgi()), re_path(r"", django_application)])}
)
