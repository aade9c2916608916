"""Target 5: the worker's own part of a job, and its memory while taking a large picture.

A real Celery worker (solo pool, pinned to one CPU, PostgreSQL with ``CONN_MAX_AGE = 0``, the
Redis bus) runs the real task against a provider that answers at once (:class:`InstantBackend`
hands over a 1024x1024 PNG of 1.8 MB, like gpt-image's). What remains of the task's time, clocked
by Celery's own ``task_prerun``/``task_postrun`` signals, is ours: renew the claim, load the record,
let the connection go, validate (a full decode), store the file, release the claim, publish.
Jobs are sent one at a time, so nothing queues. The baseline is the least any job must do with
those bytes: decode them once and write them to a file, timed in the same way on the same CPU.

Memory: a fresh worker holds a 16 MB PNG (read at start, as if just received), runs one small job
to warm up, then its peak RSS is reset (``/proc/<pid>/clear_refs``) and the big job sent; the
figure is VmHWM minus the RSS before the job.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks import fixtures
from benchmarks.harness import (
    SERVER_CPU,
    Check,
    Row,
    celery_worker,
    child_env,
    log,
    percentile,
    proc_status_kb,
    run_python,
)
from benchmarks.pictures import write

if TYPE_CHECKING:
    import redis

    from benchmarks.harness import Services

BASELINE = """
import io, json, os, sys, tempfile, time
from PIL import Image
path, runs = sys.argv[1], int(sys.argv[2])
content = open(path, 'rb').read()
out = tempfile.mkdtemp()
times = []
for i in range(runs):
    start = time.perf_counter()
    with Image.open(io.BytesIO(content), formats=['PNG']) as image:
        image.load()
    with open(os.path.join(out, f'{i}.png'), 'wb') as file:
        file.write(content)
    times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


def _settings(path: Path) -> str:
    return json.dumps(
        {
            "BACKEND": "benchmarks.site.backends.InstantBackend",
            "OPTIONS": {"path": str(path)},
            "SIZE": "1024x1024",
            "MAX_BYTES": 20 * 1024 * 1024,
        }
    )


def _redis(services: Services) -> redis.Redis:
    import redis

    return redis.Redis.from_url(services.redis_url)


def _run_jobs(services: Services, pks: list[int], timeout: float = 30.0) -> list[float]:
    """Start each record's generation as the trigger view does, one at a time; their times."""
    fixtures.setup_django()
    from benchmarks.site.models import Article
    from page_images.services import request_generation

    client = _redis(services)
    client.delete("bench:durations")
    durations: list[float] = []
    for pk in pks:
        request_generation(Article.objects.get(pk=pk))
        answer = client.blpop(["bench:durations"], timeout=timeout)
        if answer is None:
            raise TimeoutError(f"the job for article {pk} did not finish in {timeout} s")
        durations.append(float(answer[1]))
    stored = Article.objects.filter(pk__in=pks).exclude(image="").count()
    if stored != len(pks):
        errors = set(Article.objects.filter(pk__in=pks).values_list("image_error", flat=True))
        raise RuntimeError(f"only {stored} of {len(pks)} pictures were stored: {errors}")
    return durations


def _baseline(services: Services, path: Path, runs: int) -> list[float]:
    code = BASELINE.replace("sys.argv[1]", repr(str(path))).replace("sys.argv[2]", repr(runs))
    times: list[float] = run_python(code, child_env(services), cpu=SERVER_CPU)
    return times[5:]


def run(services: Services, quick: bool) -> list[Row]:
    jobs = 60 if quick else 200
    folder = Path(services.media_root).parent / "pictures"
    folder.mkdir(exist_ok=True)
    small, big = folder / "1024.png", folder / "16mb.png"
    small_size = write(small, 1024)
    big_size = write(big, 2700, grain=80)

    log(f"5 worker: {jobs} jobs, one at a time, on a solo worker (provider answers at once)")
    pks = fixtures.articles(jobs + 5, prefix="worker")
    timing = {
        "BENCH_TIMING": "1",
        "BENCH_PAGE_IMAGES": _settings(small),
        "BENCH_PROFILE": os.environ.get("BENCH_PROFILE", ""),
    }
    with celery_worker(services, pool="solo", concurrency=1, cpu=SERVER_CPU, extra_env=timing):
        durations = _run_jobs(services, pks)[5:]  # the first few warm the worker up
    baseline = _baseline(services, small, jobs + 5)

    log("5 worker: peak memory while taking a 16 MB picture")
    pks = fixtures.articles(2, prefix="worker-big")
    big_env = {"BENCH_TIMING": "1", "BENCH_PAGE_IMAGES": _settings(big)}
    with celery_worker(
        services, pool="solo", concurrency=1, cpu=SERVER_CPU, extra_env=big_env
    ) as w:
        _run_jobs(services, pks[:1])  # warm: imports, connections, one big job's buffers
        time.sleep(0.2)
        with open(f"/proc/{w.pid}/clear_refs", "w") as refs:
            refs.write("5")
        before = proc_status_kb(w.pid, "VmRSS")
        _run_jobs(services, pks[1:])
        peak = proc_status_kb(w.pid, "VmHWM")
    extra_mb = (peak - before) / 1024
    big_mb = big_size / 1024 / 1024

    target = "5 worker"
    p99, base99 = percentile(durations, 99) * 1000, percentile(baseline, 99) * 1000
    return [
        Row(
            target,
            "our part of a job, p99",
            p99,
            "ms",
            base99,
            "decode + write, p99",
            Check("figure", "<=", 50.0, "≤ 50 ms p99", quick=2.0),
            note=f"{len(durations)} jobs, 1024x1024 PNG of {small_size / 1e6:.1f} MB; p50 "
            f"{percentile(durations, 50) * 1000:.1f} ms (baseline p50 "
            f"{percentile(baseline, 50) * 1000:.1f} ms); includes taking a PostgreSQL connection "
            "twice (the job lets its first go before calling the provider), from psycopg's pool",
        ),
        Row(
            target,
            "peak extra memory, 16 MB picture",
            extra_mb,
            "MB",
            big_mb,
            "the picture",
            Check("ratio", "<=", 3.0, "≤ 3× the picture", quick=1.5),
            note=f"PNG of 2700x2700 ({big_size / 2**20:.1f} MiB); a full decode holds "
            f"{2700 * 2700 * 4 / 2**20:.0f} MiB of pixels",
        ),
    ]
