"""Target 7: the web process's footprint.

``django.setup()`` runs in fresh interpreters, alternately with and without ``page_images`` in
``INSTALLED_APPS`` (same settings otherwise, LiteLLMBackend and the Redis bus configured), pinned to
one CPU. Then a real uvicorn process serves a trigger, a fragment and an event stream and is asked
which provider SDKs it has imported.

How the time the app adds is measured, and why not as the difference of two whole setups:

* **Bytecode on both sides.** Django is timed from the ``.pyc`` files pip wrote at install, as in
  production, where pip compiles every installed package. The app is an editable checkout, and the
  children inherit ``PYTHONDONTWRITEBYTECODE=1`` from the harness's environment, so it used to be
  compiled from source in every run: 10-17 ms of the +21 ms once reported were the compiler, a
  cost no deployed web process pays (and so was most of the +0.9 MB, the compiler's memory). The
  children now write and read bytecode under a ``PYTHONPYCACHEPREFIX`` of their own (the source
  tree stays clean), and one untimed run per side fills it first.
* **The app's own share, timed inside the setup.** A whole setup takes 0.25-0.9 s on a shared
  2-CPU machine, and the difference of two such figures moved by ±20-60 ms between identical runs
  (mean of the faster half of 16-30 runs a side, in CPU time as in wall time): the noise is larger
  than the 10 ms it would judge, and no affordable number of runs shrinks it enough (the error
  falls with the square root of the runs). So the probe wraps the three steps by which
  ``django.setup()`` brings in an app: ``AppConfig.create("page_images")`` (importing the package
  and its ``apps`` module), ``import_models()`` and ``ready()`` (the checks, the signal receivers,
  and everything they import), and adds up their CPU time: the cost the app puts into a setup,
  each module the app is first to import included, measured where it happens, so that the noise
  applies to a few ms rather than to half a second. What it leaves out is Django's own loop over one
  more app (admin's look for a ``page_images.admin`` module and the like): microseconds. The
  figure is the median over the runs.
* **The whole-setup A/B stays, as a cross-check in the note**: each side's mean of its faster half
  (the undisturbed cost), in CPU time, which waiting for a busy CPU does not inflate, and in wall
  time. The memory row is still that A/B (the median growth of RSS per side): it barely varies.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from typing import TYPE_CHECKING

from benchmarks import fixtures
from benchmarks.client import Connection
from benchmarks.harness import (
    SERVER_CPU,
    Check,
    Row,
    child_env,
    log,
    run_python,
    uvicorn,
)

if TYPE_CHECKING:
    from benchmarks.harness import Services

PROBE = """
import json, os, sys, time
def rss():
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
import django
from django.apps.config import AppConfig
share = [0.0]
def timed(step):
    def run(*args, **kwargs):
        start = time.process_time()
        try:
            return step(*args, **kwargs)
        finally:
            share[0] += time.process_time() - start
    return run
create = AppConfig.create.__func__
def create_timed(cls, entry):
    if entry != 'page_images':
        return create(cls, entry)
    config = timed(create)(cls, entry)
    config.import_models = timed(config.import_models)
    config.ready = timed(config.ready)
    return config
AppConfig.create = classmethod(create_timed)
rss0, cpu0, wall0 = rss(), time.process_time(), time.perf_counter()
django.setup()
wall, cpu, grown = time.perf_counter() - wall0, time.process_time() - cpu0, rss() - rss0
sdk = sorted(m for m in sys.modules if m.split('.')[0] in {'litellm', 'openai'})
print(json.dumps({'wall': wall, 'cpu': cpu, 'share': share[0], 'rss_kb': grown, 'sdk': sdk}))
"""


def faster_half_mean(values: list[float]) -> float:
    ordered = sorted(values)
    half = ordered[: max(1, len(ordered) // 2)]
    return sum(half) / len(half)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def spread(values: list[float]) -> float:
    """The interquartile range: how far two undisturbed-looking runs of one side lie apart."""
    ordered = sorted(values)
    return ordered[(3 * len(ordered)) // 4] - ordered[len(ordered) // 4]


def setup_costs(services: Services, runs: int) -> dict[str, dict[str, float]]:
    samples: dict[str, list[dict[str, float]]] = {"none": [], "app": []}
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as pycache:
        envs: dict[str, dict[str, str]] = {}
        for install in samples:
            env = child_env(services, BENCH_INSTALL=install, PYTHONPYCACHEPREFIX=pycache)
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            envs[install] = env
            run_python(PROBE, env, cpu=SERVER_CPU)  # untimed: writes the bytecode
        for round_ in range(runs):
            # Alternate which side goes first too, so neither always follows the other.
            order = list(samples) if round_ % 2 == 0 else list(reversed(samples))
            for install in order:
                samples[install].append(run_python(PROBE, envs[install], cpu=SERVER_CPU))
    out: dict[str, dict[str, float]] = {}
    for install, results in samples.items():
        out[install] = {
            "wall_ms": faster_half_mean([r["wall"] * 1000 for r in results]),
            "cpu_ms": faster_half_mean([r["cpu"] * 1000 for r in results]),
            "cpu_spread_ms": spread([r["cpu"] * 1000 for r in results]),
            "share_ms": median([r["share"] * 1000 for r in results]),
            "rss_mb": median([r["rss_kb"] for r in results]) / 1024,
            "sdk": float(any(r["sdk"] for r in results)),
        }
    return out


async def _probe_server(port: int, headers: dict[str, str], ref: str) -> list[str]:
    connection = await Connection.open(port)
    body = f"ref={ref}".encode()
    answer = await connection.request("POST", "/page-images/generate/", headers, body)
    assert answer.status == 200, answer
    answer = await connection.request("GET", f"/page-images/fragment/?ref={ref}", headers)
    assert answer.status == 200, answer
    connection.close()
    stream = await Connection.open(port)
    from benchmarks.fixtures import references

    token = stream_token(references([int(ref.split(":")[1])]))
    await stream.start_stream(f"/page-images/events/?refs={token}")
    async for event in stream.events():
        assert event.name == "resync"
        break
    stream.close()
    probe = await Connection.open(port)
    answer = await probe.request("GET", "/modules/")
    probe.close()
    loaded: list[str] = json.loads(answer.body)
    return loaded


def stream_token(refs: list[str]) -> str:
    fixtures.setup_django()
    from page_images.live.tokens import sign_references

    return sign_references(refs)


def run(services: Services, quick: bool) -> list[Row]:
    runs = 8 if quick else 16
    log(f"7 footprint: django.setup() x{runs} with and without the app")
    costs = setup_costs(services, runs)
    with_app, without = costs["app"], costs["none"]

    log("7 footprint: a real uvicorn process serves a trigger, a fragment and a stream")
    user = fixtures.editor()
    headers = fixtures.session_headers(user)
    (ref,) = fixtures.signed_refs(fixtures.articles(1, prefix="footprint"))
    with uvicorn(services) as server:
        loaded = asyncio.run(_probe_server(server.port, headers, ref))  # type: ignore[attr-defined]
    sdk_in_setup = with_app["sdk"] > 0
    imported = loaded or (["litellm (at setup)"] if sdk_in_setup else [])
    target = "7 footprint"
    return [
        Row(
            target,
            "django.setup() time the app adds (import, models, ready())",
            with_app["share_ms"],
            "ms",
            without["cpu_ms"],
            "a whole setup without the app, CPU time",
            Check("figure", "<=", 10.0, "≤ +10 ms"),
            ratio_text=f"+{with_app['share_ms'] / without['cpu_ms'] * 100:.1f} %",
            note=(
                f"whole setup A/B, faster half of {runs} alternated runs a side: CPU time "
                f"{with_app['cpu_ms']:.0f} vs {without['cpu_ms']:.0f} ms, wall "
                f"{with_app['wall_ms']:.0f} vs {without['wall_ms']:.0f} ms; CPU time's "
                f"interquartile range {with_app['cpu_spread_ms']:.0f} and "
                f"{without['cpu_spread_ms']:.0f} ms"
            ),
        ),
        Row(
            target,
            "django.setup() RSS, app installed",
            with_app["rss_mb"],
            "MB",
            without["rss_mb"],
            "without the app",
            Check("delta", "<=", 5.0, "≤ +5 MB"),
        ),
        Row(
            target,
            "SDK modules in the web process",
            float(len(imported)),
            "",
            None,
            "after a trigger, a fragment, a stream",
            Check("figure", "==", 0.0, "none (no litellm)"),
            fmt="{:.0f}",
            note=", ".join(imported[:5]) or "litellm never imported",
        ),
    ]


if __name__ == "__main__":
    sys.exit("run `python -m benchmarks --only footprint`")
