"""``python -m benchmarks.parts``: where target 1's CPU goes, part by part, under uvicorn.

Target 1 pins one uvicorn worker to a core, so its requests per second are its CPU per request.
A profile taken in a loop in one process misses what the server adds (under ASGI every request runs
in threads of its own, with cold per-request caches) and a sampling profiler under-counts a
process whose threads hand the GIL back and forth. So this runs target 1's own stack (psycopg's
pool) with ``BENCH_PARTS=1``, which wraps each part of the trigger view, and both views whole, in a
clock of the CPU of the thread that ran it (:func:`time.thread_time`), and prints the CPU per
request of each part beside the process's own CPU per request.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import fixtures
from benchmarks.harness import LOAD_CPU, child_env, log, run_python, services, uvicorn

if TYPE_CHECKING:
    from collections.abc import Callable

    from benchmarks.harness import Services

#: (label, module, function): the trigger view's parts, in the order the view runs them.
PARTS = [
    ("load the record (signed reference, SELECT)", "page_images.clicks", "load_record"),
    ("permission (the model's change permission)", "page_images.clicks", "can_generate"),
    ("rate limit (the cache)", "page_images.ratelimit", "allow"),
    ("claim (conditional UPDATE)", "page_images.claims", "claim"),
    ("event for other tabs (publish)", "page_images.claims", "notify"),
    ("enqueue (Celery's apply_async)", "page_images.queueing", "_enqueue"),
    ("answer (render the container)", "page_images.views", "_answer"),
]
VIEWS = [("page_images.urls", "trigger"), ("benchmarks.site.urls", "empty")]

_totals: dict[str, list[float]] = {}
_lock = threading.Lock()


def _clocked(label: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def clocked(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            spent = time.thread_time() - started
            with _lock:
                total = _totals.setdefault(label, [0, 0.0])
                total[0] += 1
                total[1] += spent

    return clocked


def install() -> None:
    """Clock every part and both views (``benchmarks/asgi.py`` calls this with BENCH_PARTS=1)."""
    for label, module_name, name in PARTS:
        module = import_module(module_name)
        setattr(module, name, _clocked(label, getattr(module, name)))
    for module_name, name in VIEWS:
        for pattern in import_module(module_name).urlpatterns:
            if getattr(pattern, "name", None) == name:
                pattern.callback = _clocked(f"view: {name}", pattern.callback)


def take() -> dict[str, list[float]]:
    """The totals since the last take: {label: [calls, CPU seconds]}."""
    with _lock:
        totals = {label: list(total) for label, total in _totals.items()}
        _totals.clear()
    return totals


LOAD = """
import asyncio, json, urllib.request
from benchmarks.harness import cpu_seconds
from benchmarks.trigger import _phase
p = PARAMS
refs = json.load(open(p["refs"]))
take = lambda: json.load(urllib.request.urlopen(f"http://127.0.0.1:{p['port']}/debug/parts/"))
asyncio.run(_phase(p["port"], p["kind"], 1.0, p["headers"], refs))  # warm
take()
cpu = cpu_seconds(p["pid"])
phase = asyncio.run(_phase(p["port"], p["kind"], p["seconds"], p["headers"], refs))
cpu = cpu_seconds(p["pid"]) - cpu
print(json.dumps({"parts": take(), "cpu": cpu, "n": len(phase["latencies"]),
                  "elapsed": phase["elapsed"], "statuses": phase["statuses"]}))
"""


def profile(stack: Services, seconds: float = 10.0) -> dict[str, dict[str, Any]]:
    """Load each view for ``seconds`` on a server with the clocks in; each view's figures."""
    headers = fixtures.session_headers(fixtures.editor())
    runs: dict[str, dict[str, Any]] = {}
    with uvicorn(stack, extra_env={"BENCH_PG_POOL": "1", "BENCH_PARTS": "1"}) as server:
        for kind in ("trigger", "empty"):
            refs = Path(stack.media_root).parent / f"parts-{kind}.json"
            refs.write_text(json.dumps(fixtures.signed_refs(fixtures.articles(4_000))))
            log(f"parts: {kind} view, {seconds:.0f} s, 8 connections")
            params = {
                "port": server.port,  # type: ignore[attr-defined]
                "pid": server.pid,
                "kind": kind,
                "headers": headers,
                "refs": str(refs),
                "seconds": seconds,
            }
            code = LOAD.replace("PARAMS", repr(params))
            runs[kind] = run_python(code, child_env(stack), cpu=LOAD_CPU, timeout=600)
    # Nothing ran the jobs the clicks queued: the next target's workers must not find them.
    fixtures.setup_django()
    from benchmarks.celery_app import app

    app.control.purge()
    return runs


def per_request(run: dict[str, Any], label: str) -> float:
    """A part's CPU in ms per request of the run (a part a request skips counts as 0 for it)."""
    _calls, spent = run["parts"].get(label, [0, 0.0])
    requests: int = run["n"]
    return float(spent) * 1000 / max(requests, 1)


def summary(runs: dict[str, dict[str, Any]]) -> str:
    """One line for the table's notes."""
    trigger, empty = runs["trigger"], runs["empty"]
    parts = ", ".join(
        f"{label.split(' (')[0]} {per_request(trigger, label):.2f}" for label, _, _ in PARTS
    )
    return (
        f"CPU per request (python -m benchmarks.parts): the process {process_ms(trigger):.2f} vs "
        f"{process_ms(empty):.2f} ms, the view {per_request(trigger, 'view: trigger'):.2f} vs "
        f"{per_request(empty, 'view: empty'):.2f} ms; the trigger's parts: {parts} ms"
    )


def process_ms(run: dict[str, Any]) -> float:
    requests: int = run["n"]
    return float(run["cpu"]) * 1000 / max(requests, 1)


def main() -> None:
    with services() as stack:
        runs = profile(stack)
    print(table(runs["trigger"], runs["empty"]))


def table(trigger: dict[str, Any], empty: dict[str, Any]) -> str:
    rows = [
        "| CPU per request, ms | trigger | empty |",
        "| --- | --- | --- |",
        f"| requests/s | {trigger['n'] / trigger['elapsed']:.0f} "
        f"| {empty['n'] / empty['elapsed']:.0f} |",
        f"| the uvicorn process | {process_ms(trigger):.2f} | {process_ms(empty):.2f} |",
        f"| the view (from here, its parts) | {per_request(trigger, 'view: trigger'):.2f} "
        f"| {per_request(empty, 'view: empty'):.2f} |",
    ]
    rows += [f"| {label} | {per_request(trigger, label):.2f} | |" for label, _, _ in PARTS]
    rows.append(f"\nanswers: trigger {trigger['statuses']}, empty {empty['statuses']}")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
