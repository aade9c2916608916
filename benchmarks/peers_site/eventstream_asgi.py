"""django-eventstream as its README deploys it: Django's ASGI application, nothing in front."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.peers_site.settings")

from django.core.asgi import get_asgi_application

application = get_asgi_application()
