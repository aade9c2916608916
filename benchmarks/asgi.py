"""The ASGI application uvicorn serves in the benchmarks."""

from __future__ import annotations

import os

if os.environ.get("BENCH_TRACEMALLOC") == "1":  # a profiling aid: see benchmarks.site.views
    import tracemalloc

    tracemalloc.start(int(os.environ.get("BENCH_TRACEMALLOC_FRAMES", "1")))

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# As docs/deployment.md advises: the event stream served in front of Django's request cycle.
from page_images.asgi import EventStreams

application = EventStreams(get_asgi_application())

# As Celery's Django guide has it (the project package imports its Celery app): without it the
# trigger view would queue its jobs on Celery's default app, not on the site's broker.
from benchmarks.celery_app import app as celery_app  # noqa: E402

if os.environ.get("BENCH_PARTS") == "1":  # a profiling aid: see benchmarks.parts
    from benchmarks import parts

    parts.install()

if os.environ.get("BENCH_GC_LOG") == "1":  # a profiling aid: how long each collection pauses
    import gc
    import sys
    import time

    _gc_started: list[float] = []

    def _gc_clock(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            _gc_started[:] = [time.perf_counter()]
        elif _gc_started:
            pause = (time.perf_counter() - _gc_started[0]) * 1000
            if pause > 2:
                print(f"gc gen{info['generation']}: {pause:.1f} ms", file=sys.stderr, flush=True)

    gc.callbacks.append(_gc_clock)

__all__ = ["application", "celery_app"]
