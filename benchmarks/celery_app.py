"""The Celery app of the benchmark site, written as Celery's Django guide says."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

app = Celery("page_images_bench")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["page_images"])

if os.environ.get("BENCH_TIMING") == "1":
    # The worker-overhead target: each task's own time, from Celery's signals around it, pushed
    # to Redis after the clock stops (so the push is not counted).
    import time

    from celery.signals import task_postrun, task_prerun

    _started: dict[str, float] = {}
    _profile_path = os.environ.get("BENCH_PROFILE", "")
    if _profile_path:
        import cProfile

        _profiler = cProfile.Profile()

    @task_prerun.connect(weak=False)
    def _start_clock(task_id: str = "", **kwargs: object) -> None:
        _started[task_id] = time.perf_counter()
        if _profile_path:
            _profiler.enable()

    @task_postrun.connect(weak=False)
    def _stop_clock(task_id: str = "", **kwargs: object) -> None:
        if _profile_path:
            _profiler.disable()
            _profiler.dump_stats(_profile_path)
        elapsed = time.perf_counter() - _started.pop(task_id, time.perf_counter())
        import redis

        redis.Redis.from_url(app.conf.broker_url).rpush("bench:durations", f"{elapsed:.6f}")
