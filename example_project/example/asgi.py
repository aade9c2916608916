"""ASGI entry point: the event stream is an async view, so the demo runs under uvicorn.

``EventStreams`` serves the stream in front of Django's request cycle (no middleware, no thread
per tab), as docs/deployment.md advises for a site with many editors.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")

django_application = get_asgi_application()

from page_images.asgi import EventStreams  # noqa: E402  (needs the settings configured above)

application = EventStreams(django_application)

if settings.DEBUG:
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    application = EventStreams(ASGIStaticFilesHandler(django_application))
