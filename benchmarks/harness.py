"""What every target shares: the services on free ports, timing, percentiles, and the table.

Services are started here, on 127.0.0.1 only, and torn down by the context managers whatever
happens: a private PostgreSQL cluster (initdb in a temporary folder; the machine's server is used
only when no ``initdb`` can be found), a private ``redis-server`` that keeps nothing on disk,
uvicorn and Celery workers as child processes.

Two cores are shared by the measured process, its load generator and the services. Whatever is
measured runs in its own process pinned to CPU 0 (:data:`SERVER_CPU`) and its load generator is
pinned to CPU 1 (:data:`LOAD_CPU`), so the load never takes the measured process's core; the
services (PostgreSQL, Redis) are the machine's and float, and both sides of every ratio run under
the same arrangement in the same run.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SERVER_CPU = 0
LOAD_CPU = 1
SETTINGS = "benchmarks.settings"


# --- small tools ---------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"  · {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(
    port: int, timeout: float = 60.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"{process.args!r} exited with {process.returncode}") from None
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nothing listens on 127.0.0.1:{port} after {timeout} s"
                ) from None
            time.sleep(0.05)


def raise_open_files(wanted: int = 20_000) -> int:
    """Raise this process's (and so its children's) open-file limit as far as allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pin(cpu: int | None, pid: int = 0) -> None:
    """Keep ``pid`` (0: this process) on one CPU, when the machine has more than one."""
    if cpu is not None and (os.cpu_count() or 1) > 1 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(pid, {cpu})


def proc_status_kb(pid: int, key: str) -> int:
    """A ``/proc/<pid>/status`` figure in KiB (``VmRSS``, ``VmHWM``...); no psutil needed."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def rss_kb(pid: int = 0) -> int:
    return proc_status_kb(pid or os.getpid(), "VmRSS")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (servers such as granian run their workers as children)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def tree_rss_kb(pid: int) -> int:
    """The resident memory of ``pid`` and its descendants, in KiB."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError, KeyError):
            total += proc_status_kb(member, "VmRSS")
    return total


def reset_peak_rss() -> None:
    """Make VmHWM start again from the current RSS (Linux ≥ 4.0)."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0–100), interpolated between the two nearest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    """``with timed() as t: ...`` then ``t[0]`` is the elapsed seconds."""
    box: list[float] = []
    start = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - start)


# --- the table -----------------------------------------------------------------------------------


@dataclass
class Check:
    """What a row must meet: ``value <op> limit``, where value is the figure or the ratio.

    ``quick`` is how far the quick (CI) mode lets the value miss before it fails: ×1.5 means a
    ``≤ 20 ms`` target fails CI only above 30 ms, a ``≥ 0.6×`` one only below 0.4×.
    """

    on: str  # "figure", "ratio" (figure / baseline) or "delta" (figure - baseline)
    op: str  # "<=", ">=", "==", or "context" (no target: shown, never judged)
    limit: float
    text: str
    quick: float = 2.0

    @property
    def is_context(self) -> bool:
        """A figure shown beside the targets, to read them by, with no target of its own."""
        return self.op == "context"

    def passes(self, value: float, quick: bool) -> bool:
        if self.is_context:
            return True
        if math.isnan(value):
            return False
        slack = self.quick if quick else 1.0
        if self.op == "<=":
            return value <= self.limit * slack
        if self.op == ">=":
            return value >= self.limit / slack
        return value == self.limit


@dataclass
class Row:
    target: str
    name: str
    figure: float
    unit: str
    baseline: float | None
    baseline_name: str
    check: Check
    ratio_text: str = ""
    note: str = ""
    passed: bool = False
    fmt: str = "{:.1f}"

    @property
    def ratio(self) -> float:
        if self.baseline in (None, 0):
            return math.nan
        return self.figure / self.baseline

    @property
    def delta(self) -> float:
        return math.nan if self.baseline is None else self.figure - self.baseline

    def judge(self, quick: bool) -> Row:
        value = {"figure": self.figure, "ratio": self.ratio, "delta": self.delta}[self.check.on]
        self.passed = self.check.passes(value, quick)
        return self

    def cells(self) -> list[str]:
        figure = f"{self.fmt.format(self.figure)} {self.unit}".strip()
        baseline = "—"
        if self.baseline is not None:
            baseline = f"{self.fmt.format(self.baseline)} {self.unit}".strip()
            if self.baseline_name:
                baseline += f" ({self.baseline_name})"
        elif self.baseline_name:
            baseline = self.baseline_name
        ratio = self.ratio_text or ("—" if math.isnan(self.ratio) else f"{self.ratio:.2f}×")
        if self.check.on == "delta" and not self.ratio_text:
            ratio = f"{self.delta:+.1f} {self.unit} ({self.ratio:.2f}×)"
        return [
            self.target,
            self.name,
            figure,
            baseline,
            ratio,
            self.check.text,
            "context" if self.check.is_context else "pass" if self.passed else "FAIL",
        ]


HEADERS = ["#", "figure", "measured", "baseline (same run)", "ratio", "target", "pass"]


def table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table (also what the terminal shows)."""
    cells = [HEADERS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADERS))]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    out = [line(HEADERS), "| " + " | ".join("-" * w for w in widths) + " |"]
    out += [line(row.cells()) for row in rows]
    return "\n".join(out)


# --- processes -----------------------------------------------------------------------------------


def stop_process(process: subprocess.Popen[Any] | None, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; the process's own group when it has one."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()


def child_env(services: Services, **extra: str) -> dict[str, str]:
    env = {**os.environ, **services.env, **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    return env


@contextlib.contextmanager
def process(
    args: Sequence[str],
    env: dict[str, str],
    *,
    port: int | None = None,
    cpu: int | None = None,
    log_name: str = "process",
    cwd: Path = ROOT,
    ready: Callable[[], bool] | None = None,
    timeout: float = 90.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process, pinned to ``cpu``, its output in a log file shown if it fails to start."""
    # Kept open past this function (closed in the finally below), so no ``with`` here.
    log_file = tempfile.NamedTemporaryFile(  # noqa: SIM115
        prefix=f"bench-{log_name}-", suffix=".log", delete=False
    )
    child = subprocess.Popen(
        list(args), env=env, cwd=cwd, stdout=log_file, stderr=subprocess.STDOUT
    )
    pin(cpu, child.pid)
    try:
        try:
            if port is not None:
                wait_port(port, timeout, child)
            if ready is not None:
                deadline = time.monotonic() + timeout
                while not ready():
                    if child.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{log_name} did not become ready")
                    time.sleep(0.1)
        except Exception:
            log_file.flush()
            sys.stderr.write(Path(log_file.name).read_text(errors="replace")[-4000:])
            raise
        yield child
    finally:
        stop_process(child)
        log_file.close()
        if os.environ.get("BENCH_KEEP_LOGS"):
            log(f"{log_name} log kept: {log_file.name}")
        else:
            with contextlib.suppress(OSError):
                os.unlink(log_file.name)


def uvicorn_speedups() -> list[str]:
    """``--loop uvloop --http httptools`` (what ``uvicorn[standard]`` installs) when present.

    Named explicitly rather than left to uvicorn's "auto", so the table says what ran; without
    them (the bench extra not installed) uvicorn's pure-Python asyncio loop and h11 parser run.
    """
    import importlib.util

    found = all(importlib.util.find_spec(name) for name in ("uvloop", "httptools"))
    return (
        ["--loop", "uvloop", "--http", "httptools"]
        if found
        else ["--loop", "asyncio", "--http", "h11"]
    )


def uvicorn(
    services: Services,
    *,
    app: str = "benchmarks.asgi:application",
    cpu: int | None = SERVER_CPU,
    extra_env: dict[str, str] | None = None,
    args: Sequence[str] = (),
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """One uvicorn worker serving the benchmark site; ``.port`` is set on the process."""
    port = free_port()
    command = [
        PYTHON,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        "--backlog",
        "4096",
        *uvicorn_speedups(),
        *args,
    ]
    manager = process(
        command, child_env(services, **(extra_env or {})), port=port, cpu=cpu, log_name="uvicorn"
    )
    return _with_port(manager, port)


@contextlib.contextmanager
def _with_port(
    manager: contextlib.AbstractContextManager[subprocess.Popen[bytes]], port: int
) -> Iterator[subprocess.Popen[bytes]]:
    with manager as child:
        child.port = port  # type: ignore[attr-defined]
        yield child


def celery_worker(
    services: Services,
    *,
    pool: str,
    concurrency: int,
    cpu: int | None = None,
    extra_env: dict[str, str] | None = None,
    prefetch: bool = False,
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """A Celery worker of the benchmark site, ready once it answers a ping.

    It takes a job only when a thread (or process) is free, as docs/deployment.md says: prefetched
    jobs waited a whole provider call on one worker while the other had threads idle.
    ``prefetch=True`` is Celery's default, for a baseline.
    """
    node = f"bench-{pool}-{os.getpid()}-{time.monotonic_ns()}@127.0.0.1"
    command = [
        PYTHON,
        "-m",
        "celery",
        "-A",
        "benchmarks.celery_app",
        "worker",
        f"--pool={pool}",
        f"--concurrency={concurrency}",
        "--loglevel=WARNING",
        "-n",
        node,
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "--prefetch-multiplier=1",
    ]
    if not prefetch:
        command.append("--disable-prefetch")
    env = child_env(services, **(extra_env or {}))

    def ready() -> bool:
        from benchmarks.celery_app import app

        return bool(app.control.ping(destination=[node], timeout=0.5))

    return process(command, env, cpu=cpu, log_name=f"celery-{pool}", ready=ready, timeout=120)


# --- the services --------------------------------------------------------------------------------


@dataclass
class Services:
    """PostgreSQL and Redis for one run, and the environment that points children at them."""

    pg_host: str = "127.0.0.1"
    pg_port: int = 5432
    pg_name: str = "page_images_bench"
    redis_port: int = 6379
    redis_db: int = 0
    media_root: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/{self.redis_db}"

    @property
    def env(self) -> dict[str, str]:
        return {
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "BENCH_PG_HOST": self.pg_host,
            "BENCH_PG_PORT": str(self.pg_port),
            "BENCH_PG_NAME": self.pg_name,
            "BENCH_REDIS_URL": self.redis_url,
            # Belt and braces: Celery's default app reads it too, so no job can ever reach
            # another broker on this machine by mistake.
            "CELERY_BROKER_URL": self.redis_url,
            "BENCH_MEDIA_ROOT": self.media_root,
        }

    def apply_to_this_process(self) -> None:
        os.environ.update(self.env)
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: p.parts)
    return str(candidates[-1]) if candidates else None


#: A throwaway cluster: trust authentication on 127.0.0.1 only, no fsync while it is created.
INITDB_OPTIONS = ("-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")


@contextlib.contextmanager
def postgres(workdir: Path) -> Iterator[tuple[str, int, str]]:
    """A private PostgreSQL cluster on a free port (``initdb``, stock settings but the port)."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        host = os.environ.get("BENCH_PG_HOST", "127.0.0.1")
        port = int(os.environ.get("BENCH_PG_PORT", "5432"))
        log(f"no initdb found: using the PostgreSQL server at {host}:{port}")
        yield host, port, "server"
        return
    data = workdir / "pg"
    data.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(workdir, "postgres")
        shutil.chown(data, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run(
        [*as_user, initdb, "-D", str(data), *INITDB_OPTIONS],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1"
    subprocess.run(
        [*as_user, pg_ctl, "-D", str(data), "-l", str(data / "log"), "-o", options, "-w", "start"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    version = subprocess.run(
        [_pg_bin("postgres") or "postgres", "--version"], capture_output=True, text=True
    ).stdout.strip()
    try:
        yield "127.0.0.1", port, version
    finally:
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )


def redis_command(port: int) -> list[str]:
    """A redis-server on ``port`` of 127.0.0.1 that keeps nothing on disk."""
    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    return [
        server,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--maxclients",
        "20000",
        "--loglevel",
        "warning",
    ]


#: The harness's own redis-server of each port, so that a target can restart it (restart_redis).
_REDIS: dict[int, subprocess.Popen[bytes]] = {}


@contextlib.contextmanager
def redis_server() -> Iterator[int]:
    """A private redis-server on a free port that keeps nothing on disk."""
    port = free_port()
    with process(redis_command(port), dict(os.environ), port=port, log_name="redis") as child:
        _REDIS[port] = child
        try:
            yield port
        finally:
            stop_process(_REDIS.pop(port, None))


def restart_redis(services: Services, down: float) -> tuple[float, float]:
    """Stop the run's redis-server (SIGTERM, as a service manager's restart does), wait ``down``
    seconds, start it again on the same port; the wall-clock times it stopped and listened again.
    """
    port = services.redis_port
    stop_process(_REDIS[port])
    stopped = time.time()
    time.sleep(down)
    child = subprocess.Popen(
        redis_command(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _REDIS[port] = child
    wait_port(port, 30, child)
    return stopped, time.time()


@contextlib.contextmanager
def services() -> Iterator[Services]:
    """PostgreSQL + Redis + a media folder, with the benchmark database migrated."""
    workdir = Path(tempfile.mkdtemp(prefix="page-images-bench-"))
    try:
        with postgres(workdir) as (pg_host, pg_port, pg_version), redis_server() as redis_port:
            media = workdir / "media"
            media.mkdir()
            found = Services(
                pg_host=pg_host,
                pg_port=pg_port,
                pg_name=f"page_images_bench_{os.getpid()}",
                redis_port=redis_port,
                media_root=str(media),
            )
            found.notes.append(pg_version)
            _create_database(found)
            found.apply_to_this_process()
            try:
                subprocess.run(
                    [
                        PYTHON,
                        "-m",
                        "django",
                        "migrate",
                        "--run-syncdb",
                        "--noinput",
                        "-v",
                        "0",
                        "--skip-checks",
                    ],
                    env=child_env(found),
                    cwd=ROOT,
                    check=True,
                )
                yield found
            finally:
                _drop_database(found)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _psql(services: Services, sql: str) -> None:
    import psycopg

    with psycopg.connect(
        host=services.pg_host,
        port=services.pg_port,
        user="postgres",
        dbname="postgres",
        autocommit=True,
    ) as connection:
        connection.execute(sql.encode())


def _create_database(services: Services) -> None:
    _psql(services, f'DROP DATABASE IF EXISTS "{services.pg_name}"')
    _psql(services, f'CREATE DATABASE "{services.pg_name}"')


def _drop_database(services: Services) -> None:
    with contextlib.suppress(Exception):
        _psql(services, f'DROP DATABASE IF EXISTS "{services.pg_name}" WITH (FORCE)')


def setup_django() -> None:
    """Configure Django in this (orchestrating) process, for fixtures and in-process targets."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    django.setup()
    import benchmarks.celery_app  # noqa: F401  (the site's Celery app: jobs go to its broker)


def run_python(code: str, env: dict[str, str], cpu: int | None = None, timeout: float = 120) -> Any:
    """Run ``code`` in a fresh interpreter (pinned to ``cpu``); it prints one JSON value last."""
    command = [PYTHON, "-c", code]
    if cpu is not None and (os.cpu_count() or 1) > 1 and shutil.which("taskset"):
        command = ["taskset", "-c", str(cpu), *command]
    # The child's stderr goes straight to ours: its progress and, if it fails, its traceback.
    done = subprocess.run(
        command, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"a measuring process failed ({done.returncode}): see its traceback")
    return json.loads(done.stdout.strip().splitlines()[-1])
