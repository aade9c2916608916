"""Target 8: a backfill at the provider's rate limit, paced, interrupted and resumed.

The fake provider, in a process of its own, answers 429 (with ``Retry-After``) to a call that
would be the N+1st inside any window of W seconds: "N per minute" with the minute scaled down to
W, so that a run of 10,000 records takes minutes, not hours (N and W are in the row's note). The
pictures are tiny (64x64) and N/W is 10 calls a second: the provider's limit, not the workers'
two shared cores, decides the pace, as it does for a site whose provider takes 10 s a picture.

The backfill is the real command (``page_images_backfill`` with ``--max-in-flight``) feeding
two real Celery workers (``--pool=threads --concurrency=50``, the documented ones) on the
harness's own Redis and PostgreSQL, with ``RATE_LIMITS`` set to the provider's N per W. A third
of the way, the workers (SIGTERM: a deployment's restart) and the command (Ctrl-C) are stopped;
then new workers and the command again finish the backfill. Every record must then hold its
picture, made by exactly one accepted provider call: accepted calls = records, none left
generating. Throughput is measured after the restart, from the first picture stored to the last,
as a share of N/W; the workers' memory at the start, the middle and the end of that stretch.

The baseline, in the same run, is the same backfill without ``RATE_LIMITS``: each worker retries
its own 429s with back-off (``MAX_RETRIES``, ``RETRY_BACKOFF``), as the app did before pacing.
It runs on a fifth of the records (the 429s and pictures per second it reaches do not grow
with the count once the provider's window is full), and its rate is counted once its first
window's N calls, which the provider takes at once, are done.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import fixtures
from benchmarks.harness import (
    LOAD_CPU,
    PYTHON,
    ROOT,
    Check,
    Row,
    celery_worker,
    child_env,
    cpu_seconds,
    log,
    rss_kb,
    stop_process,
)
from benchmarks.provider import provider_process, refused, refused_at

if TYPE_CHECKING:
    from collections.abc import Iterator

    from benchmarks.harness import Services

#: The provider's limit: N calls per W seconds ("per minute", the minute scaled to W).
LIMIT = 300
WINDOW = 30.0
MODEL = "openai/gpt-image-1"
SIDE = 64
PROCESSES = 2
THREADS = 50
#: The backfill keeps this many jobs queued or running: a bit more than a window's worth.
IN_FLIGHT = 300


def _settings(api_base: str, paced: bool) -> str:
    limits = {MODEL: {"requests_per_minute": LIMIT, "window": WINDOW}} if paced else {}
    return json.dumps(
        {
            "BACKEND": "page_images.backends.litellm.LiteLLMBackend",
            "OPTIONS": {
                "model": MODEL,
                "api_base": api_base,
                "api_key": "sk-bench-not-a-key",
                "timeout": 60,
            },
            "SIZE": f"{SIDE}x{SIDE}",
            "ALLOW_LOOPBACK_DOWNLOADS": True,
            "RATE_LIMITS": limits,
        }
    )


@contextlib.contextmanager
def _workers(services: Services, env: dict[str, str]) -> Iterator[list[subprocess.Popen[bytes]]]:
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(
                celery_worker(services, pool="threads", concurrency=THREADS, extra_env=env)
            )
            for _ in range(PROCESSES)
        ]


def _backfill(services: Services, env: dict[str, str], prefix: str) -> subprocess.Popen[bytes]:
    command = [
        PYTHON,
        "-m",
        "django",
        "page_images_backfill",
        "bench.Article",
        "--filter",
        f"title__startswith={prefix} ",
        "--max-in-flight",
        str(IN_FLIGHT),
    ]
    return subprocess.Popen(
        command,
        env=child_env(services, **env),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


#: 429s CI's quick run lets by before it fails (the full run's target is none).
QUICK_REFUSALS = 2


def _wait_interrupted(command: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Wait for the backfill to end after its Ctrl-C; if it does not, fail with where it hangs.

    An operator's Ctrl-C must end the command; if it does not, the stack (py-spy, in the bench
    extra) goes into the failure for whoever reads it. (It once showed the command asleep in its
    loop: the run had been started in the background, where the shell ignores Ctrl-C for every
    child; :func:`benchmarks.run.main` now restores it.)
    """
    try:
        command.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        dump = subprocess.run(
            [str(Path(PYTHON).with_name("py-spy")), "dump", "--pid", str(command.pid)],
            capture_output=True,
            text=True,
            check=False,
        )
        stop_process(command)
        log(f"8 pacing: the backfill ignored Ctrl-C for {timeout:.0f} s; its stack:")
        log(dump.stdout or dump.stderr)
        raise RuntimeError(
            f"the backfill command did not end within {timeout:.0f} s of Ctrl-C (stack logged)"
        ) from None


def _done(pks: list[int]) -> int:
    from benchmarks.site.models import Article

    return Article.objects.filter(pk__in=pks).exclude(image="").count()


def _wait_until(pks: list[int], count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _done(pks) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {_done(pks)} of {count} pictures after {timeout:.0f} s")
        time.sleep(0.2)


def _settle(pks: list[int], timeout: float) -> None:
    """Until no record is generating any more (every job ended, however)."""
    from benchmarks.site.models import Article

    deadline = time.monotonic() + timeout
    rows = Article.objects.filter(pk__in=pks)
    while rows.filter(image_generating=True).exists():
        if time.monotonic() > deadline:
            raise RuntimeError("records still generating after the backfill")
        time.sleep(0.5)


def _rss_mb(workers: list[subprocess.Popen[bytes]]) -> float:
    return sum(rss_kb(worker.pid) for worker in workers) / 1024


def _stretch(pks: list[int], timeout: float) -> dict[str, Any]:
    """From the first new picture to the last: pictures a second, and memory along the way."""
    start_count = _done(pks)
    deadline = time.monotonic() + timeout
    while _done(pks) == start_count:
        if time.monotonic() > deadline:
            raise RuntimeError("no picture after the restart")
        time.sleep(0.05)
    began, first = time.monotonic(), _done(pks)
    return {"began": began, "first": first}


def _paced_run(services: Services, api_base: str, records: int) -> dict[str, Any]:
    env = {"BENCH_PAGE_IMAGES": _settings(api_base, paced=True)}
    prefix = f"pacing-{time.monotonic_ns()}"
    pks = fixtures.articles(records, prefix=prefix)
    third = records // 3
    events = {"first start": time.monotonic()}
    with _workers(services, env) as workers:
        events["first workers ready"] = time.monotonic()
        command = _backfill(services, env, prefix)
        _wait_until(pks, third, timeout=records / LIMIT * WINDOW * 3 + 60)
        log(f"8 pacing: {_done(pks)} of {records} done: stopping the workers and the command")
        command.send_signal(signal.SIGINT)
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=60)
        _wait_interrupted(command)
    interrupted_at = _done(pks)
    events["stopped"] = time.monotonic()
    with _workers(services, env) as workers:
        events["second workers ready"] = time.monotonic()
        command = _backfill(services, env, prefix)
        try:
            stretch = _stretch(pks, timeout=120)
            cpu_before = sum(cpu_seconds(worker.pid) for worker in workers)
            left = records - stretch["first"]
            # Memory once the pools have grown their threads and LiteLLM its clients (a sixth of
            # the way), half-way, and at the end.
            _wait_until(pks, stretch["first"] + left // 6, 3 * records)
            rss = [_rss_mb(workers)]
            _wait_until(pks, stretch["first"] + left // 2, 3 * records)
            rss.append(_rss_mb(workers))
            _wait_until(pks, records, timeout=3 * records / LIMIT * WINDOW + 120)
            ended = time.monotonic()
            rss.append(_rss_mb(workers))
            cpu = sum(cpu_seconds(worker.pid) for worker in workers) - cpu_before
            _settle(pks, timeout=120)
            command.wait(timeout=60)
        finally:
            stop_process(command)
    return {
        "pks": pks,
        "interrupted_at": interrupted_at,
        "rate": (records - stretch["first"]) / (ended - stretch["began"]),
        "rss": rss,
        "cpu_per_picture": cpu / left,
        "events": events,
    }


def _baseline_run(services: Services, api_base: str, records: int) -> dict[str, Any]:
    env = {"BENCH_PAGE_IMAGES": _settings(api_base, paced=False)}
    prefix = f"unpaced-{time.monotonic_ns()}"
    pks = fixtures.articles(records, prefix=prefix)
    with _workers(services, env):
        started = time.monotonic()
        command = _backfill(services, env, prefix)
        # Its first window's N calls go out at once, unrefused: the rate is counted from the
        # moment they are done, as the paced run's is from its steady state.
        full_window, after, last, done = math.nan, 0, started, 0
        deadline = started + 20 * records / LIMIT * WINDOW + 300
        try:
            while command.poll() is None and time.monotonic() < deadline:
                now, count = time.monotonic(), _done(pks)
                if count >= LIMIT and math.isnan(full_window):
                    full_window, after = now, count
                if count > done:
                    last, done = now, count
                time.sleep(0.2)
        finally:
            stop_process(command)
        elapsed = time.monotonic() - started
        _settle(pks, timeout=120)
    done = _done(pks)
    return {
        "pks": pks,
        "done": done,
        "rate": (done - after) / (last - full_window) if last > full_window else math.nan,
        "elapsed": elapsed,
    }


def _anomalies(pks: list[int]) -> dict[str, int]:
    from benchmarks.site.models import Article
    from page_images.history import Generation

    rows = Article.objects.filter(pk__in=pks)
    made = Generation.objects.filter(
        object_id__in=[str(pk) for pk in pks], status=Generation.Status.DONE
    )
    return {
        "without a picture": rows.filter(image="").count(),
        "still generating": rows.filter(image_generating=True).count(),
        "pictures made": made.count(),
    }


def run(services: Services, quick: bool) -> list[Row]:
    fixtures.setup_django()
    from benchmarks.celery_app import app

    app.control.purge()
    records = 900 if quick else 10_000
    sample = 600 if quick else 2_000
    folder = Path(services.media_root).parent
    limit = (LIMIT, WINDOW)
    log(f"8 pacing: {records} records, provider limit {LIMIT} per {WINDOW:.0f} s")
    with provider_process(0.0, SIDE, folder, cpu=LOAD_CPU, rate_limit=limit) as (base, calls):
        paced = _paced_run(services, base, records)
        paced_calls = calls()
    paced_refused = refused(folder)
    origin = paced["events"]["first start"]
    moments = ", ".join(f"{name} {at - origin:.1f} s" for name, at in paced["events"].items())
    refusals = ", ".join(f"{at - origin:.1f}" for at in refused_at(folder)) or "none"
    log(f"8 pacing: {moments}; 429s at {refusals} s")
    log(f"8 pacing: the baseline, {sample} records without RATE_LIMITS")
    with provider_process(0.0, SIDE, folder, cpu=LOAD_CPU, rate_limit=limit) as (base, calls):
        baseline = _baseline_run(services, base, sample)
        baseline_calls = calls()
    baseline_refused = refused(folder)
    per_second = LIMIT / WINDOW
    from page_images.pacing import Limit

    margin = Limit(LIMIT, None, WINDOW).margin  # what the budget adds to each window
    found = _anomalies(paced["pks"])
    accepted = paced_calls - paced_refused
    wrong = abs(accepted - records) + found["without a picture"] + found["still generating"]
    wrong += abs(found["pictures made"] - records)
    start, middle, end = paced["rss"]
    setting = f"N = {LIMIT} per W = {WINDOW:.0f} s (a minute scaled down), {SIDE}x{SIDE} pictures"
    return [
        Row(
            "8 pacing",
            f"429s provoked, {records} records",
            paced_refused,
            "",
            baseline_refused,
            f"unpaced, {sample} records",
            # Full mode: none. CI's quick mode tolerates two (a quiet machine's CI run once saw
            # one, 20 s after the restart; not yet explained, see docs/pacing.md); pacing that
            # stopped working provokes hundreds, as the unpaced baseline does.
            Check("figure", "<=", QUICK_REFUSALS, f"≤ {QUICK_REFUSALS} (quick)")
            if quick
            else Check("figure", "==", 0, "0"),
            ratio_text="—",
            fmt="{:.0f}",
            note=f"{setting}; {PROCESSES} workers --pool=threads x{THREADS}, the backfill "
            f"command --max-in-flight {IN_FLIGHT}; the provider took {paced_calls} calls; the "
            f"unpaced baseline {baseline_calls} calls for {sample} records, "
            f"{baseline['done']} pictures, {sample - baseline['done']} records given up after "
            f"MAX_RETRIES, in {baseline['elapsed']:.0f} s; paced run: {moments}, 429s at "
            f"{refusals} s",
        ),
        Row(
            "8 pacing",
            "throughput, % of N per W",
            100 * paced["rate"] / per_second,
            "%",
            100 * baseline["rate"] / per_second,
            "unpaced",
            Check("figure", ">=", 90, "≥ 90 %", quick=1.2),
            ratio_text=f"{paced['rate']:.1f} vs {baseline['rate']:.1f} pictures/s",
            note=f"after the restart, from its first picture to the last (the workers spent "
            f"{1000 * paced['cpu_per_picture']:.0f} ms of CPU a picture); the budget books "
            f"calls {WINDOW:.0f} s + a {margin:.2f} s margin apart per N, so "
            f"≈ {100 * WINDOW / (WINDOW + margin):.1f} % is the ceiling",
        ),
        Row(
            "8 pacing",
            "worker RSS growth, start to end",
            end - start,
            "MB",
            None,
            f"start {start:.0f} MB, middle {middle:.0f} MB, end {end:.0f} MB",
            Check("figure", "<=", 20, "≤ 20 MB", quick=2.0),
            note="the two resumed workers' RSS together, after the restart: a sixth of the way "
            "(the thread pools and LiteLLM's clients grown), half-way, at the end",
        ),
        Row(
            "8 pacing",
            "interrupted at a third, resumed: jobs lost or done twice",
            wrong,
            "",
            None,
            f"{paced['interrupted_at']} done at the interruption",
            Check("figure", "==", 0, "0"),
            fmt="{:.0f}",
            note=f"accepted provider calls {accepted} for {records} records; "
            + ", ".join(f"{key} {value}" for key, value in found.items()),
        ),
    ]
