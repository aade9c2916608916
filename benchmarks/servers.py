"""Target 11: the same stream under the ASGI servers sites deploy, and the floor beneath them.

Nearly all of what a stream holds is its server's per-connection cost, so the same app
(``benchmarks.asgi:application``: ``EventStreams`` in front of Django, on the Redis bus) is
served in turn by uvicorn, granian, hypercorn and daphne, one worker each on CPU 0, uvloop where
the server can use it; the tabs are a crowd process on CPU 1 (benchmarks.crowd). For each:

1. the event latency (publish → listener) alone, then with 2,000 others connected;
2. those 2,000 dropped and reopened at once: the seconds until every one has its ``resync``;
3. more streams, up to 10,000: the server's RSS growth per stream (its worker processes
   included: granian's Rust front and Python worker are two).

The baseline of the memory is a raw asyncio server (benchmarks.rawserver) holding as many
connections after answering each with the stream's first frame: the floor of any Python server.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from benchmarks import fixtures
from benchmarks.crowd import Crowds
from benchmarks.harness import (
    LOAD_CPU,
    PYTHON,
    SERVER_CPU,
    Check,
    Row,
    child_env,
    free_port,
    log,
    percentile,
    pin,
    process,
    process_tree,
    tree_rss_kb,
    uvicorn_speedups,
)
from benchmarks.scale import latencies, settle, tokens

if TYPE_CHECKING:
    from collections.abc import Iterator

    from benchmarks.harness import Services

APP = "benchmarks.asgi:application"
BARE = "benchmarks.bareapp:application"
#: The server the deployment docs recommend: its memory row is judged (and its failure to run).
RECOMMENDED = "uvicorn"
#: What our app may add to the recommended server's own cost of a held stream.
MEMORY_RATIO = 2.0


def command(server: str, port: int, app: str = APP) -> list[str]:
    """How each server is started: one worker, no access log, keep-alive left on for hours."""
    if server == "uvicorn":
        return [PYTHON, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
                "--log-level", "warning", "--no-access-log", "--backlog", "4096",
                "--timeout-keep-alive", "3600", *uvicorn_speedups()]  # fmt: skip
    if server == "granian":
        # "asginl": ASGI without the lifespan protocol, which Django does not speak. Granian
        # serves at most --backpressure requests at once (default: the backlog, 1,024, per
        # worker) and leaves the next connections waiting: each open stream is one, so it is
        # raised to the open-file limit.
        return [PYTHON, "-m", "granian", "--interface", "asginl", "--host", "127.0.0.1",
                "--port", str(port), "--workers", "1", "--loop", "uvloop", "--backlog", "4096",
                "--backpressure", "20000",
                "--log-level", "warning", "--no-ws", app]  # fmt: skip
    if server == "hypercorn":
        return [PYTHON, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                "--worker-class", "uvloop", "--keep-alive", "3600", "--backlog", "4096",
                "--log-level", "warning", app]  # fmt: skip
    if server == "daphne":  # Twisted's reactor, no uvloop; the backlog through an endpoint string
        endpoint = f"tcp:port={port}:interface=127.0.0.1:backlog=4096"
        return [PYTHON, "-m", "daphne", "-e", endpoint, "-v", "0", app]
    if server == "raw":
        return [PYTHON, "-m", "benchmarks.rawserver", str(port)]
    raise ValueError(server)


SERVERS = ["uvicorn", "granian", "hypercorn", "daphne"]


#: Latency and reconnects are context here: target 2 judges them for uvicorn, on the same app,
#: and a second guard on the same figures would only double CI's exposure to noise.
CONTEXT = Check("figure", "context", 0, "context")


def check(judged_check: Check, judged: bool) -> Check:
    """The row's target for the recommended server; the other servers' rows are context."""
    return judged_check if judged else CONTEXT


def version(server: str) -> str:
    from importlib.metadata import version as installed

    return installed(server)


@contextlib.contextmanager
def serving(services: Services, server: str, app: str = APP) -> Iterator[tuple[int, int]]:
    """The server on a free port, it and its children on CPU 0: (port, pid)."""
    port = free_port()
    with process(
        ["taskset", "-c", str(SERVER_CPU), *command(server, port, app)],
        child_env(services),
        port=port,
        log_name=server,
    ) as child:
        time.sleep(1)  # workers a server forks after it listens
        for member in process_tree(child.pid):
            pin(SERVER_CPU, member)
        yield port, child.pid


def measure(
    services: Services, server: str, signed: list[str], others: int, samples: int
) -> dict[str, Any]:
    env = child_env(services)
    out: dict[str, Any] = {}
    with serving(services, server) as (port, pid), Crowds(1, env, LOAD_CPU) as crowd, \
            Crowds(1, env, LOAD_CPU, first=3) as probe:  # fmt: skip
        from page_images.live.tokens import sign_references

        listener = [[port, sign_references(["bench.article:listener"]), "bench.article:listener"]]
        crowd.ask([{"command": "open", "targets": [[port, t] for t in signed[:200]]}])
        crowd.ask_all({"command": "close"})
        settle(process_tree(pid))
        latencies(probe, listener, services.redis_url, 20)
        before = tree_rss_kb(pid)
        out["alone"] = latencies(probe, listener, services.redis_url, samples)["all"]
        crowd.ask([{"command": "open", "targets": [[port, t] for t in signed[:others]]}])
        settle(process_tree(pid))
        out["crowded"] = latencies(probe, listener, services.redis_url, samples)["all"]
        # All of them drop, the server finishes with them, and they come back at once.
        crowd.ask_all({"command": "close"})
        settle(process_tree(pid))
        [answer] = crowd.ask(
            [{"command": "open", "targets": [[port, t] for t in signed[:others]],
              "parallel": others}]
        )  # fmt: skip
        out["reconnect_seconds"] = answer["seconds"]
        settle(process_tree(pid))
        [answer] = crowd.ask(
            [{"command": "open", "targets": [[port, t] for t in signed[others:]], "parallel": 100}]
        )
        settle(process_tree(pid))
        out["streams"] = len(signed) + 1
        out["rss_before_kb"], out["rss_after_kb"] = before, tree_rss_kb(pid)
        out["per_stream"] = (out["rss_after_kb"] - before) / out["streams"]
        crowd.ask_all({"command": "close"})
    log(
        f"11 servers: {server}: {out['per_stream']:.1f} KB/stream, p99 "
        f"{percentile(out['crowded'], 99):.1f} ms with {others} others "
        f"({percentile(out['alone'], 99):.1f} alone), {others} reconnects in "
        f"{out['reconnect_seconds']:.2f} s"
    )
    return out


def floor(services: Services, server: str, count: int) -> float:
    """KB per stream held by ``server`` ("raw": the raw asyncio server) serving the bare app."""
    env = child_env(services)
    with serving(services, server, BARE) as (port, pid), Crowds(1, env, LOAD_CPU) as crowd:
        targets = [[port, "x"] for _ in range(count)]
        crowd.ask([{"command": "open", "targets": targets[:200]}])
        crowd.ask_all({"command": "close"})
        settle(process_tree(pid))
        before = tree_rss_kb(pid)
        crowd.ask([{"command": "open", "targets": targets, "parallel": 100}])
        settle(process_tree(pid))
        per = (tree_rss_kb(pid) - before) / count
        crowd.ask_all({"command": "close"})
    log(f"11 servers: {server}, the bare app: {per:.2f} KB/stream")
    return per


def run(services: Services, quick: bool) -> list[Row]:
    streams, others = (2_000, 500) if quick else (10_000, 2_000)
    samples = 200 if quick else 1000
    fixtures.setup_django()
    signed = tokens(streams)
    raw = floor(services, "raw", streams)
    results: dict[str, dict[str, Any]] = {}
    failures: dict[str, str] = {}
    for server in SERVERS:
        log(f"11 servers: {server} {version(server)}, {streams} streams")
        try:
            results[server] = measure(services, server, signed, others, samples)
            results[server]["bare"] = floor(services, server, streams)
        except Exception as exc:  # a server that cannot hold the stream says so in its row
            failures[server] = f"{type(exc).__name__}: {exc}"
            log(f"11 servers: {server} failed: {failures[server]}")
    target = "11 servers"
    rows = [
        Row(
            target,
            "raw asyncio server: memory per connection held",
            raw,
            "KB",
            None,
            "",
            Check("figure", "context", 0, "context"),
            fmt="{:.2f}",
            note="uvloop, one asyncio.Protocol per connection, the stream's first frame sent",
        )
    ]
    leanest = min(results, key=lambda name: results[name]["per_stream"], default=RECOMMENDED)
    reference = results.get(RECOMMENDED)
    for server in SERVERS:
        name = f"{server} {version(server)}"
        judged = server == RECOMMENDED
        if server in failures:
            # The recommended server must run: its failure fails the target.
            rows.append(Row(target, f"{name}: could not hold the stream", float("nan"), "",
                            None, "", check(Check("figure", "==", 0, "runs"), judged),
                            note=failures[server]))  # fmt: skip
            continue
        result = results[server]
        crowded, alone = result["crowded"], result["alone"]
        rows += [
            Row(
                target,
                f"{name}: memory per stream, {result['streams']}",
                result["per_stream"],
                "KB",
                result["bare"],
                "the server alone: a bare ASGI app",
                check(Check("ratio", "<=", MEMORY_RATIO, f"≤ {MEMORY_RATIO}×", quick=1.3), judged),
                note=f"RSS {result['rss_before_kb'] / 1024:.0f} → "
                f"{result['rss_after_kb'] / 1024:.0f} MB; the server alone holds a stream for "
                f"{result['bare']:.1f} KB, {result['bare'] / raw:.0f}× a raw asyncio "
                f"connection ({raw:.2f} KB)"
                + ("; the leanest of the four" if server == leanest else ""),
            ),
            Row(
                target,
                f"{name}: event p99, {others} others",
                percentile(crowded, 99),
                "ms",
                percentile(alone, 99),
                "no other client",
                CONTEXT,
                note=f"p50 {percentile(crowded, 50):.2f} ms",
            ),
            Row(
                target,
                f"{name}: {others} reconnects at once",
                result["reconnect_seconds"],
                "s",
                None if reference is None else reference["reconnect_seconds"],
                "uvicorn",
                CONTEXT,
                fmt="{:.2f}",
            ),
        ]
    return rows
