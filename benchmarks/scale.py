"""Target 10: more than one worker: 50,000 streams over four uvicorn workers on one Redis bus.

The site runs four uvicorn processes on four ports, as behind a load balancer (nginx's upstream,
a cloud balancer) that spreads connections round-robin: each worker subscribes to the bus once,
whatever it holds. (``uvicorn --workers 4`` shares one socket and lets the kernel pick the worker,
so the split, and which worker a listener lands on, is left to chance: four ports make both
known.) All four are pinned to CPU 0; the tabs are held by crowd processes on CPU 1
(benchmarks.crowd), each bound to its own 127.0.0.x, since one process may hold 20,000 open files
and one source address has about 28,000 ports. A probe process holds one listener per worker and
publishes on the bus, as a Celery worker does. In order:

1. event latency, publish → a listener on each worker, with no other client (the baseline);
2. 50,000 streams opened round-robin: the workers' RSS growth per stream (summed over the four);
3. the latency again, with the 50,000 connected; one event that every stream follows, to all;
4. Redis restarted (the run's own redis-server stopped with SIGTERM, as a service manager does,
   and started on the same port 2 s later): the seconds from Redis being back until every stream
   has its ``resync`` (the bus re-subscribes and the hub sends it, so the page re-reads what an
   event lost in the gap would have told it), streams lost, workers alive, the shared event
   delivered to every stream again, memory after;
5. the baseline of the memory: one worker holding a quarter of the streams, the same per-worker
   load, in the same run.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from benchmarks import fixtures
from benchmarks.crowd import CHANNEL, Crowds
from benchmarks.harness import (
    LOAD_CPU,
    Check,
    Row,
    child_env,
    cpu_seconds,
    log,
    percentile,
    restart_redis,
    rss_kb,
    uvicorn,
)

if TYPE_CHECKING:
    from benchmarks.harness import Services

WORKERS = 4
REFS_PER_TAB = 10
#: A reference every stream follows, to time one event to all of them.
EVERYONE = "bench.article:everyone"
SERVER_ARGS = ["--timeout-keep-alive", "3600"]
#: How long Redis stays down in the restart: a service manager's restart, with margin.
REDIS_DOWN = 2.0


def settle(pids: list[int], limit: float = 180.0) -> float:
    """Wait until the processes have been idle (< 5 % of a CPU together) for a second."""
    start = time.monotonic()
    quiet = 0
    while time.monotonic() - start < limit and quiet < 2:
        before = sum(cpu_seconds(pid) for pid in pids)
        time.sleep(0.5)
        quiet = quiet + 1 if sum(cpu_seconds(pid) for pid in pids) - before < 0.025 else 0
    return time.monotonic() - start


def tokens(count: int) -> list[str]:
    from page_images.live.tokens import sign_references

    return [
        sign_references(
            [f"bench.article:{20_000_000 + tab * REFS_PER_TAB + i}" for i in range(REFS_PER_TAB)]
            + [EVERYONE]
        )
        for tab in range(count)
    ]


def spread(ports: list[int], signed: list[str], crowds: int) -> list[list[list[Any]]]:
    """Round-robin over the ports (the balancer), in one slice per crowd process."""
    targets = [[ports[i % len(ports)], token] for i, token in enumerate(signed)]
    size = -(-len(targets) // crowds)
    return [targets[k * size : (k + 1) * size] for k in range(crowds)]


def publish(services: Services, reference: str) -> None:
    import redis

    client = redis.Redis.from_url(services.redis_url)
    try:
        client.publish(CHANNEL, reference)
    finally:
        client.close()


def latencies(probe: Crowds, listeners: list[list[Any]], url: str, samples: int) -> dict[str, Any]:
    [answer] = probe.ask([{"command": "latency", "listeners": listeners, "redis_url": url,
                           "samples": samples}])  # fmt: skip
    by_port = {port: [x * 1000 for x in values] for port, values in answer["by_port"].items()}
    return {"all": [x for values in by_port.values() for x in values], "by_port": by_port}


def to_everyone(services: Services, crowds: Crowds, timeout: float = 120) -> tuple[int, float]:
    """Publish the reference every stream follows: how many got it, and the seconds to the last."""
    crowds.ask_all({"command": "mark", "watch": EVERYONE})
    sent = time.time()
    publish(services, EVERYONE)
    answers = crowds.ask_all({"command": "wait", "what": "changed", "timeout": timeout})
    return sum(a["seen"] for a in answers), max(a["last"] for a in answers) - sent


def open_streams(crowds: Crowds, slices: list[list[list[Any]]]) -> float:
    answers = crowds.ask([{"command": "open", "targets": part, "parallel": 100} for part in slices])
    return max(a["seconds"] for a in answers)


def measure_workers(
    services: Services, count: int, streams: int, crowd_count: int, samples: int, restart: bool
) -> dict[str, Any]:
    """``count`` workers, ``streams`` streams: memory, latency, fan-out, and the Redis restart."""
    env = child_env(services)
    signed = tokens(streams)
    out: dict[str, Any] = {"streams": streams, "workers": count}
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(uvicorn(services, args=SERVER_ARGS)) for _ in range(count)]
        ports = [server.port for server in servers]  # type: ignore[attr-defined]
        pids = [server.pid for server in servers]
        crowds = stack.enter_context(Crowds(crowd_count, env, LOAD_CPU))
        probe = stack.enter_context(Crowds(1, env, LOAD_CPU, first=2 + crowd_count))
        from page_images.live.tokens import sign_references

        names = [f"bench.article:listener-{port}" for port in ports]
        listeners = [
            [port, sign_references([name]), name] for port, name in zip(ports, names, strict=True)
        ]
        # Warm every worker (imports, URL resolution, first allocations), then let them settle.
        open_streams(crowds, spread(ports, signed[: 100 * count], crowd_count))
        crowds.ask_all({"command": "close"})
        settle(pids)
        latencies(probe, listeners, services.redis_url, 4 * count)
        out["alone"] = latencies(probe, listeners, services.redis_url, samples)
        log(f"10 scale: {count} worker(s), p99 alone {percentile(out['alone']['all'], 99):.1f} ms")

        before = [rss_kb(pid) for pid in pids]
        out["open_seconds"] = open_streams(crowds, spread(ports, signed, crowd_count))
        settle(pids)
        after = [rss_kb(pid) for pid in pids]
        out["rss_before_kb"], out["rss_after_kb"] = before, after
        log(
            f"10 scale: {streams} streams open in {out['open_seconds']:.1f} s, RSS "
            f"{sum(before) / 1024:.0f} → {sum(after) / 1024:.0f} MB"
        )
        out["crowded"] = latencies(probe, listeners, services.redis_url, samples)
        log(f"10 scale: p99 with {streams} others {percentile(out['crowded']['all'], 99):.1f} ms")
        out["fanout_seen"], out["fanout_seconds"] = to_everyone(services, crowds)
        log(f"10 scale: one event to {out['fanout_seen']} streams in {out['fanout_seconds']:.2f} s")
        if restart:
            out["restart"] = redis_restart(services, crowds, probe, pids)
            out["restart"]["after"] = latencies(probe, listeners, services.redis_url, samples // 4)
        closing = time.monotonic()
        crowds.ask_all({"command": "close"})
        settle(pids)
        out["close_seconds"] = time.monotonic() - closing
    return out


def redis_restart(
    services: Services, crowds: Crowds, probe: Crowds, pids: list[int]
) -> dict[str, Any]:
    settle(pids)
    crowds.ask_all({"command": "mark"})
    probe.ask_all({"command": "mark"})
    rss_before = sum(rss_kb(pid) for pid in pids)
    stopped, back = restart_redis(services, REDIS_DOWN)
    answers = crowds.ask_all({"command": "wait", "what": "resync", "timeout": 60})
    answers += probe.ask_all({"command": "wait", "what": "resync", "timeout": 30})
    alive = sum(1 for pid in pids if _alive(pid))
    out: dict[str, Any] = {
        "down": back - stopped,
        "resynced": sum(a["seen"] for a in answers),
        "streams": sum(a["streams"] for a in answers),
        "lost": sum(a["lost"] for a in answers),
        "open": sum(a["open"] for a in answers),
        "resync_seconds": max(a["last"] for a in answers) - back,
        "alive": alive,
    }
    out["seen_after"], out["fanout_after"] = to_everyone(services, crowds, timeout=60)
    settle(pids)
    out["rss_before_kb"], out["rss_after_kb"] = rss_before, sum(rss_kb(pid) for pid in pids)
    log(
        f"10 scale: Redis down {out['down']:.1f} s; {out['resynced']}/{out['streams']} streams "
        f"resynced {out['resync_seconds']:.2f} s after it came back; {out['lost']} lost; "
        f"{alive}/{len(pids)} workers alive; then {out['seen_after']} got the next event"
    )
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def run(services: Services, quick: bool) -> list[Row]:
    streams = 4_000 if quick else 50_000
    crowd_count = 2 if quick else 4
    samples = 200 if quick else 1000
    fixtures.setup_django()
    log(f"10 scale: {WORKERS} uvicorn workers, {streams} streams, a Redis restart")
    many = measure_workers(services, WORKERS, streams, crowd_count, samples, restart=True)
    per_worker = streams // WORKERS
    log(f"10 scale: the baseline, one worker holding {per_worker} streams")
    one = measure_workers(services, 1, per_worker, crowd_count, samples // 2, restart=False)

    def per_stream(result: dict[str, Any]) -> float:
        return (sum(result["rss_after_kb"]) - sum(result["rss_before_kb"])) / result["streams"]

    growth = [
        (after - before) / 1024
        for before, after in zip(many["rss_before_kb"], many["rss_after_kb"], strict=True)
    ]
    crowded, alone = many["crowded"]["all"], many["alone"]["all"]
    per_port = ", ".join(
        f"{percentile(values, 99):.1f}" for values in many["crowded"]["by_port"].values()
    )
    restart = many["restart"]
    deaf = (
        (restart["streams"] - restart["resynced"])
        + restart["lost"]
        + (streams - restart["seen_after"])
        + (WORKERS - restart["alive"])
    )
    target = "10 scale"
    return [
        Row(
            target,
            f"memory per stream, {streams} over {WORKERS} workers",
            per_stream(many),
            "KB",
            per_stream(one),
            f"1 worker, {per_worker}",
            Check("ratio", "<=", 1.15, "≤ 1.15× one worker's", quick=1.3),
            note=f"workers' RSS {sum(many['rss_before_kb']) / 1024:.0f} → "
            f"{sum(many['rss_after_kb']) / 1024:.0f} MB (per worker +"
            f"{', +'.join(f'{g:.0f}' for g in growth)} MB); opened in "
            f"{many['open_seconds']:.0f} s ({streams / many['open_seconds']:.0f}/s), closed in "
            f"{many['close_seconds']:.0f} s; one worker: {per_worker} in "
            f"{one['open_seconds']:.0f} s",
        ),
        Row(
            target,
            f"event p99, {streams} others",
            percentile(crowded, 99),
            "ms",
            percentile(alone, 99),
            "no other client",
            Check("figure", "<=", 50.0, "≤ 50 ms", quick=2.0),
            note=f"{len(crowded)} events, publish → a listener on each worker in turn; p99 per "
            f"worker {per_port} ms; p50 {percentile(crowded, 50):.2f} ms vs "
            f"{percentile(alone, 50):.2f} ms alone; one worker with {per_worker} others: p99 "
            f"{percentile(one['crowded']['all'], 99):.1f} ms; every keep-alive "
            f"({streams / 15:.0f}/s across the workers) shares CPU 0",
        ),
        Row(
            target,
            f"one event to all {streams} streams",
            many["fanout_seconds"],
            "s",
            one["fanout_seconds"],
            f"to {per_worker} on 1 worker",
            Check("figure", "context", 0, "context"),
            fmt="{:.2f}",
            note=f"{many['fanout_seen']}/{streams} received it",
        ),
        Row(
            target,
            "Redis restart: all streams resynced",
            restart["resync_seconds"],
            "s",
            2.0,
            "the bus's back-off cap",
            Check("figure", "<=", 10.0, "≤ 10 s after Redis is back", quick=1.5),
            fmt="{:.2f}",
            note=f"Redis down {restart['down']:.1f} s (SIGTERM, restarted on its port); "
            f"{restart['resynced']}/{restart['streams']} streams got their resync after it came "
            f"back, {restart['lost']} dropped, {restart['alive']}/{WORKERS} workers alive; the "
            f"next event reached {restart['seen_after']}/{streams} in "
            f"{restart['fanout_after']:.2f} s; p99 after "
            f"{percentile(restart['after']['all'], 99):.1f} ms; workers' RSS "
            f"{restart['rss_before_kb'] / 1024:.0f} → {restart['rss_after_kb'] / 1024:.0f} MB",
        ),
        Row(
            target,
            "Redis restart: streams deaf or lost",
            float(deaf),
            "",
            None,
            "",
            Check("figure", "==", 0, "0"),
            fmt="{:.0f}",
            note="streams without a resync + streams dropped + streams that missed the next "
            "event + workers that died",
        ),
    ]
