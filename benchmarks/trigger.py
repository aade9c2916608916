"""Target 1: the trigger view against an empty view behind the same middleware and login.

One uvicorn worker (pinned to CPU 0) serves the benchmark site, once with each of
docs/deployment.md's database settings (``CONN_MAX_AGE = 0`` alone, then with psycopg's pool): the
pool takes the cost of a new PostgreSQL connection off every request, the empty view's as much as
the trigger's, so the ratio is shown for both. The session is in the database, the rate limit
counted in Redis, Celery's broker on Redis. A load process pinned to CPU 1 keeps ``CONCURRENCY``
keep-alive connections busy (closed loop) as a logged-in editor with htmx's headers. Each trigger
POST names a record nobody has claimed, so every request really claims (one conditional UPDATE) and
really enqueues (a Redis LPUSH); the empty view is a POST through the same middleware (session,
CSRF, authentication, messages) that returns nothing once it has checked the user. The two loads
alternate in short rounds, so a slow minute on a shared machine hits both alike.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import fixtures
from benchmarks.client import Connection, build_request
from benchmarks.harness import (
    LOAD_CPU,
    Check,
    Row,
    child_env,
    log,
    percentile,
    run_python,
    uvicorn,
)

if TYPE_CHECKING:
    from benchmarks.harness import Services

CONCURRENCY = 8

LOAD = """
import asyncio, json
from benchmarks.trigger import load
print(json.dumps(asyncio.run(load(PARAMS))))
"""


async def _phase(
    port: int, kind: str, seconds: float, headers: dict[str, str], refs: list[str]
) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    empty = build_request("POST", f"/{kind}/", port, headers, b"next=%2F")
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        connection = await Connection.open(port)
        while time.perf_counter() < deadline:
            if kind == "trigger":
                body = f"ref={refs.pop()}&next=%2F".encode()
                raw = build_request("POST", "/page-images/generate/", port, headers, body)
            else:
                raw = empty
            start = time.perf_counter()
            response = await connection.send(raw)
            latencies.append(time.perf_counter() - start)
            statuses[response.status] = statuses.get(response.status, 0) + 1
            if connection.closed:
                connection = await Connection.open(port)
        connection.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - began
    return {"kind": kind, "elapsed": elapsed, "latencies": latencies, "statuses": statuses}


async def load(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The load process: warm both views, then alternate them for ``rounds`` rounds."""
    port, headers = params["port"], params["headers"]
    refs: list[str] = json.loads(Path(params["refs"]).read_text())
    results = []
    kinds = params.get("kinds", ("empty", "trigger", "login-only"))
    for kind in kinds:  # warm: connections, caches, the first PostgreSQL backends
        await _phase(port, kind, 1.0, headers, refs)
    for _ in range(params["rounds"]):
        for kind in kinds:
            results.append(await _phase(port, kind, params["seconds"], headers, refs))
    return results


def run(services: Services, quick: bool) -> list[Row]:
    rounds, seconds = (3, 2.0) if quick else (5, 5.0)
    records = 3_000 if quick else 6_000
    headers = fixtures.session_headers(fixtures.editor())
    rows: list[Row] = []
    # Both of docs/deployment.md's database settings, each with records of its own to claim; the
    # quick mode (CI) guards the default one only.
    for pool in (False,) if quick else (False, True):
        pks = fixtures.articles(records, prefix=f"trigger-{pool}")
        refs_file = Path(services.media_root).parent / f"trigger-refs-{pool}.json"
        refs_file.write_text(json.dumps(fixtures.signed_refs(pks)))
        rows += _measure(services, pks, refs_file, headers, rounds, seconds, pool)
    if not quick:
        # Where the pool row's CPU goes, part by part, with the clocks in a server of its own.
        from benchmarks import parts

        rows[2].note += "; " + parts.summary(parts.profile(services))
    return rows


def _measure(
    services: Services,
    pks: list[int],
    refs_file: Path,
    headers: dict[str, str],
    rounds: int,
    seconds: float,
    pool: bool,
) -> list[Row]:
    variant = "psycopg pool" if pool else "CONN_MAX_AGE=0"
    log(
        f"1 trigger ({variant}): {rounds} rounds of {seconds:.0f} s per view, "
        f"{CONCURRENCY} connections"
    )
    with uvicorn(services, extra_env={"BENCH_PG_POOL": "1" if pool else "0"}) as server:
        params = {
            "port": server.port,  # type: ignore[attr-defined]
            "headers": headers,
            "refs": str(refs_file),
            "rounds": rounds,
            "seconds": seconds,
        }
        code = LOAD.replace("PARAMS", repr(params))
        phases = run_python(code, child_env(services), cpu=LOAD_CPU, timeout=600)
    fixtures.setup_django()
    from benchmarks.site.models import Article

    claimed = Article.objects.filter(pk__in=pks, image_generating=True).count()
    import redis

    queued = redis.Redis.from_url(services.redis_url).llen("celery")
    # No worker ran here: the queued jobs must not wait for the next target's workers, which
    # would call the provider for each of them (and count their time as its own).
    from benchmarks.celery_app import app

    app.control.purge()

    figures: dict[str, dict[str, float]] = {}
    statuses: dict[str, dict[str, int]] = {}
    for kind in ("empty", "trigger", "login-only"):
        mine = [p for p in phases if p["kind"] == kind]
        rates = sorted(len(p["latencies"]) / p["elapsed"] for p in mine)
        latencies = [x for p in mine for x in p["latencies"]]
        figures[kind] = {
            "rps": rates[len(rates) // 2],
            "p50": percentile(latencies, 50) * 1000,
            "p99": percentile(latencies, 99) * 1000,
            "n": float(len(latencies)),
        }
        statuses[kind] = {}
        for p in mine:
            for status, count in p["statuses"].items():
                statuses[kind][status] = statuses[kind].get(status, 0) + count
    empty, trigger, login = figures["empty"], figures["trigger"], figures["login-only"]
    target = "1 trigger"
    # The pool's rows are context, not targets (issue 14): the profile (docs/benchmarks.md) showed
    # where its CPU goes, mostly inside the libraries the view stands on (Celery and kombu's
    # publish, the permission check), and editors click a few times an hour.
    context = Check("ratio", "context", 0.0, "context (no target)")
    return [
        Row(
            target,
            f"trigger view, requests/s ({variant})",
            trigger["rps"],
            "req/s",
            empty["rps"],
            "empty view: login + permission",
            context if pool else Check("ratio", ">=", 0.6, "≥ 0.6×", quick=1.5),
            fmt="{:.0f}",
            note=f"median of {rounds} rounds of {seconds:.0f} s, {CONCURRENCY} connections; "
            f"answers: trigger {statuses['trigger']}, empty {statuses['empty']}; "
            f"{claimed} records claimed and {queued} jobs queued in Redis (warm-up included); "
            f"an empty view with the login check alone: {login['rps']:.0f} req/s "
            f"(ratio {trigger['rps'] / login['rps']:.2f}×)",
        ),
        Row(
            target,
            f"trigger view, p99 latency ({variant})",
            trigger["p99"],
            "ms",
            empty["p99"],
            "empty view",
            context if pool else Check("ratio", "<=", 2.0, "≤ 2×", quick=1.5),
            note=f"p50 {trigger['p50']:.1f} ms vs {empty['p50']:.1f} ms; login check alone: "
            f"p99 {login['p99']:.1f} ms",
        ),
    ]
