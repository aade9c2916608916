"""Target 3: many generations against a slow provider.

The fake provider (a real HTTP server speaking OpenAI's images API) takes ``LATENCY`` seconds per
picture; the real LiteLLM backend calls it. ``JOBS`` records are claimed and queued all at once, as
a backfill does (``request_generations``: one UPDATE, one broker connection), and the clock runs
until every one holds its picture (read from PostgreSQL). The workers are the documented ones
(docs/deployment.md): one process per core, each ``--pool=threads --concurrency=50
--disable-prefetch`` (a provider call is I/O: a thread waits on a socket without the GIL; what a job
does with the answer, decode and store, is CPU, and one process has one GIL). The baseline is
Celery's default on the same two processes, ``--pool=prefork --concurrency=2``: it runs two jobs at
a time, so it is measured on a smaller batch in the same run and its time for ``JOBS`` is
extrapolated from its measured rate (jobs per second), which a fixed-size pool keeps constant.
Neither side is pinned: both use the machine's two cores as a deployment would.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks import fixtures
from benchmarks.harness import LOAD_CPU, Check, Row, celery_worker, cpu_seconds, log
from benchmarks.provider import provider_process

if TYPE_CHECKING:
    from benchmarks.harness import Services

LATENCY = 5.0
JOBS = 100
PROCESSES = os.cpu_count() or 1
THREADS = 50


def _settings(api_base: str) -> str:
    return json.dumps(
        {
            "BACKEND": "page_images.backends.litellm.LiteLLMBackend",
            "OPTIONS": {
                "model": "openai/gpt-image-1",
                "api_base": api_base,
                "api_key": "sk-bench-not-a-key",
                "timeout": 60,
            },
            "SIZE": "1024x1024",
            "ALLOW_LOOPBACK_DOWNLOADS": True,
        }
    )


def _batch(count: int, prefix: str, timeout: float) -> dict[str, float]:
    """Queue ``count`` generations at once and wait until all are stored: the seconds to that,
    and to the last enqueue, the first, the median and the 90th picture; the failures; the most
    PostgreSQL connections seen open at once (the workers' and this process's)."""
    from django.db import connection

    from benchmarks.site.models import Article
    from page_images.services import request_generations

    pks = fixtures.articles(count, prefix=prefix)
    records = list(Article.objects.filter(pk__in=pks))
    start = time.perf_counter()
    request_generations(records)
    out = {"queued": time.perf_counter() - start, "first": math.nan, "half": math.nan}
    out["ninety"] = math.nan
    rows = Article.objects.filter(pk__in=pks)
    most = 0
    while time.perf_counter() - start < timeout:
        waiting = rows.filter(image_generating=True).count()
        now = time.perf_counter() - start
        if waiting < count and math.isnan(out["first"]):
            out["first"] = now
        if waiting <= count // 2 and math.isnan(out["half"]):
            out["half"] = now
        if waiting <= count // 10 and math.isnan(out["ninety"]):
            out["ninety"] = now
        if not waiting:
            break
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            )
            most = max(most, cursor.fetchone()[0])
        time.sleep(0.05)
    out["elapsed"] = time.perf_counter() - start
    out["failed"] = rows.exclude(image_error="").count() + rows.filter(image="").count()
    out["connections"] = most
    return out


def run(services: Services, quick: bool) -> list[Row]:
    fixtures.setup_django()
    from benchmarks.celery_app import app

    app.control.purge()  # only this target's jobs are timed: nothing left queued by another
    sample = 2 if quick else 8
    folder = Path(services.media_root).parent
    with provider_process(LATENCY, 1024, folder, cpu=LOAD_CPU) as (api_base, provider_calls):
        env = {"BENCH_PAGE_IMAGES": _settings(api_base)}
        log(
            f"3 throughput: {JOBS} jobs, provider {LATENCY:.0f} s, {PROCESSES} workers "
            f"--pool=threads x{THREADS}"
        )
        with contextlib.ExitStack() as stack:
            workers = [
                stack.enter_context(
                    celery_worker(services, pool="threads", concurrency=THREADS, extra_env=env)
                )
                for _ in range(PROCESSES)
            ]
            _batch(4 * PROCESSES, "throughput-warm", 60)  # the first calls build LiteLLM's client
            cpu_before = sum(cpu_seconds(worker.pid) for worker in workers)
            threads = _batch(JOBS, "throughput", 120)
            worker_cpu = sum(cpu_seconds(worker.pid) for worker in workers) - cpu_before
        log(f"3 throughput: {sample} jobs on --pool=prefork --concurrency=2 (the baseline)")
        with celery_worker(
            services, pool="prefork", concurrency=2, cpu=None, extra_env=env, prefetch=True
        ):
            _batch(2, "throughput-prefork-warm", 60)
            prefork = _batch(sample, "throughput-prefork", 120)
        calls = provider_calls()
    prefork_extrapolated = prefork["elapsed"] / sample * JOBS
    speedup = prefork_extrapolated / threads["elapsed"]
    return [
        Row(
            "3 throughput",
            f"{JOBS} jobs, provider {LATENCY:.0f} s each",
            threads["elapsed"],
            "s",
            prefork_extrapolated,
            "prefork x2, extrapolated",
            # CI fails at 9.6 s: jobs waiting a provider call for a thread (prefetched by
            # the other worker) took 10.4 s, against 5.5 to 6 s now.
            Check("figure", "<=", 8.0, "≤ 8 s", quick=1.2),
            ratio_text=f"{speedup:.0f}× faster",
            note=f"{PROCESSES} x --pool=threads --concurrency={THREADS} --disable-prefetch, "
            f"{threads['failed']:.0f} "
            f"failed, {calls} provider calls in all (warm-up and baseline included); all queued "
            f"at {threads['queued']:.2f} s, the first "
            f"picture stored at {threads['first']:.1f} s, half at {threads['half']:.1f} s, 90 % at "
            f"{threads['ninety']:.1f} s; the "
            f"workers busy {worker_cpu:.1f} CPU s, at most {threads['connections']:.0f} PostgreSQL "
            f"connections open; baseline measured: {sample} jobs in {prefork['elapsed']:.1f} s "
            f"on --pool=prefork --concurrency=2 ({prefork['failed']:.0f} failed), "
            f"x{JOBS / sample:.1f} for {JOBS} jobs",
        ),
    ]
