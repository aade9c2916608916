"""The suite's two tiers, and the guards that keep the fast one fast (a pytest plugin).

A test that needs PostgreSQL, Redis, a real Celery worker, a process or Chromium carries the
marker that says so (``FULL_TIER``): it is in the full tier. Every other test is in the fast tier.

- ``--tier=fast`` (the default; ``make test``): the fast tier, inside the test process on SQLite,
  in about half a minute; at the end it says how many full-tier tests it left out.
- ``--tier=full`` (``make test-full``): the full tier, on PostgreSQL with the real services.
- ``--tier=all``: both in one session. ``make test-all`` runs every test once: the fast tier,
  then the full tier (runtests.py).

The fast tier does not trust the markers: it refuses, loudly, what an unmarked test tries anyway.
Starting a process (subprocess, fork, multiprocessing; Chromium comes that way too), starting a
Celery worker, or connecting to PostgreSQL, Redis, RabbitMQ or anything off this machine fails
the test, even where the code under test swallows the error. Servers on 127.0.0.1 in threads of
this process (the fake image provider, a black hole, a refused port) are fine. A fast test whose
set-up and call take longer than ``FAST_TEST_SECONDS`` fails too: mark it or make it faster.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import ipaddress
import multiprocessing.process
import os
import platform
import socket
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator

#: The markers that put a test in the full tier, and what each one means.
FULL_TIER = {
    "postgres": "needs PostgreSQL's own semantics (row locks, real concurrency)",
    "redis": "talks to a real Redis server (the machine's, or one of the test's own)",
    "worker": "starts a real worker: Celery's (threads here, or a process), or a db_worker",
    "process": "starts a process: a server, a worker, a pytest or an interpreter of its own",
    "browser": "drives headless Chromium",
}
#: Ports of the services the fast tier must never reach: PostgreSQL, Redis, RabbitMQ.
SERVICE_PORTS = frozenset(
    {
        5432,
        6379,
        5672,
        int(os.environ.get("PAGE_IMAGES_PG_PORT", "5432")),
        int(os.environ.get("PAGE_IMAGES_REDIS_PORT", "6379")),
    }
)
#: The most a fast-tier test may take, set-up included (PAGE_IMAGES_FAST_TEST_SECONDS overrides):
#: a backstop for a test that waits on the clock, with room for a busy machine (the slowest takes
#: about 2 s). Hypothesis tests are exempt under any profile but ``dev``: their cost is the
#: profile's example count, chosen on purpose (tests/support/fuzz.py).
FAST_TEST_SECONDS = float(os.environ.get("PAGE_IMAGES_FAST_TEST_SECONDS", "10"))
TIERS = ("fast", "full", "all")
#: The full tier runs on two pytest-xdist workers (runtests.py): these modules on one, every other
#: full-tier test on the other, one at a time, as before. They spend their minutes in processes
#: of their own, with services of their own (a wheel built and installed into a site with its own
#: Redis; pytest runs against broken variants, or against a PostgreSQL cluster of their own; fresh
#: interpreters importing the app) and judge no clock, so they share nothing with the rest, whose
#: clocks (kills, time limits, outages, a browser's waits) must not compete with each other.
BESIDE = (
    "tests/test_install.py",
    "tests/faults/test_broken_variants.py",
    "tests/faults/test_click_storm.py",
    "tests/test_tiers.py",
    "tests/test_imports.py",
)
#: Modules whose first import costs seconds (LiteLLM: 10 s of CPU on this 2-core machine, more
#: under coverage): imported just before the first test whose module mentions them, outside its
#: timed set-up, so that FAST_TEST_SECONDS, and a full-tier test's wait for its first job on an
#: in-process worker, measure tests, not which one came first; in the fast tier those modules
#: share one pytest-xdist worker, so the import is paid once (pytest_xdist_make_scheduler).
WARM_UP = ("litellm",)

_violations: list[str] = []
_lock = threading.Lock()


class TierViolation(Exception):
    """What a fast-tier test did that only the full tier may do."""


def _refuse(what: str) -> TierViolation:
    message = (
        f"{what}: not in the fast tier. Mark the test with one of "
        f"{', '.join(f'@pytest.mark.{name}' for name in FULL_TIER)} (it then runs in "
        "`make test-all`), or keep it inside this process."
    )
    with _lock:
        _violations.append(message)
    return TierViolation(message)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--tier",
        choices=TIERS,
        default=os.environ.get("PAGE_IMAGES_TIER", "fast"),
        help="fast: the in-process tests, on SQLite (make test); full: the tests marked for the "
        "real services (make test-full); all: both. Default: $PAGE_IMAGES_TIER, else fast.",
    )


def tier(config: pytest.Config) -> str:
    value: str = config.getoption("--tier")
    return value


def pytest_configure(config: pytest.Config) -> None:
    for name, meaning in FULL_TIER.items():
        config.addinivalue_line("markers", f"{name}: full tier (make test-all); {meaning}")
    if tier(config) != "fast":
        return
    if os.environ.get("PAGE_IMAGES_TEST_DB", "sqlite") != "sqlite":
        raise pytest.UsageError(
            "The fast tier runs on SQLite: unset PAGE_IMAGES_TEST_DB, or run the full tier "
            "(make test-all, or --tier=all)."
        )
    if not _xdist_controller(config):  # the controller starts the workers and runs no test
        session = contextlib.ExitStack()
        session.enter_context(guards())
        config.add_cleanup(session.close)


def _xdist_controller(config: pytest.Config) -> bool:
    """pytest-xdist's main process (``-n 2``): it starts workers, which run the tests."""
    return not hasattr(config, "workerinput") and config.getoption("dist", "no") != "no"


def pytest_report_header(config: pytest.Config) -> list[str]:
    from hypothesis import settings as hypothesis_settings

    profile = hypothesis_settings.get_current_profile_name()
    return [f"page_images: tier={tier(config)}, hypothesis profile={profile}"]


# --- Selection ----------------------------------------------------------------------------------


def full_tier_markers(item: pytest.Item) -> list[str]:
    return [name for name in FULL_TIER if item.get_closest_marker(name)]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if tier(config) != "all":
        fast = tier(config) == "fast"
        left_out = [item for item in items if bool(full_tier_markers(item)) == fast]
        if left_out:
            items[:] = [item for item in items if bool(full_tier_markers(item)) != fast]
            config.hook.pytest_deselected(items=left_out)
        config.stash[_LEFT_OUT] = len(left_out)
    if tier(config) == "fast":
        return
    if os.environ.get("PAGE_IMAGES_TEST_DB", "sqlite") != "postgres":  # as tests/settings.py
        # The full tier without a PostgreSQL (a laptop): runtests.py said so; CI never gets here.
        skip = pytest.mark.skip(
            reason="PostgreSQL is not reachable: skipped (make test-all runs it on PostgreSQL)"
        )
        for item in items:
            if item.get_closest_marker("postgres"):
                item.add_marker(skip)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """How the two pytest-xdist workers share the tests.

    Fast tier: the modules that use a WARM_UP module on one worker, the other tests spread one by
    one (LiteLLM's import costs 10 s of CPU on this machine: paid once, not by each worker).
    Full tier: BESIDE's modules on one worker, every other test on the other, one at a time.
    (pytest-xdist's ``--dist loadgroup`` would do for the latter, but its group marks are lost
    under pytest 9: it renames ``item._nodeid``, which pytest 9 no longer reads.)
    """
    from xdist.scheduler import LoadScopeScheduling

    full = tier(config) == "full"
    root = config.rootpath

    class Shared(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::")[0]
            if full:
                return "beside" if module in BESIDE else "one-at-a-time"
            return "warm-up" if _warm_ups(root / module) else nodeid  # others: test by test

    return Shared(config, log) if tier(config) in ("fast", "full") else None


@functools.cache
def _warm_ups(path: Path) -> tuple[str, ...]:
    """The WARM_UP modules a test module mentions."""
    text = path.read_text(errors="replace") if path.suffix == ".py" else ""
    return tuple(name for name in WARM_UP if name in text)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Import the WARM_UP modules a test's module mentions before its set-up begins: outside the
    durations that FAST_TEST_SECONDS judges, and only in a process that runs such a test."""
    for name in _warm_ups(Path(str(item.fspath))):
        importlib.import_module(name)


_LEFT_OUT = pytest.StashKey[int]()
_SETUP_SECONDS = pytest.StashKey[float]()


def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist: a worker's count of what it left out (every worker collects all tests)."""
    config = node.config
    config.stash[_LEFT_OUT] = node.workeroutput.get("left_out", 0)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    left_out = config.stash.get(_LEFT_OUT, 0)
    if tier(config) != "all" and left_out:
        tests = "test" if left_out == 1 else "tests"
        other = (
            "the full tier not run: make test-full"
            if tier(config) == "fast"
            else ("the fast tier not run here: make test")
        )
        terminalreporter.write_line(f"{left_out} {tests} of {other}", yellow=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["left_out"] = session.config.stash.get(_LEFT_OUT, 0)
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter:
            other = "full" if tier(session.config) == "fast" else "fast"
            hint = f" (every test selected is in the {other} tier: --tier={other} or all)"
            left_out = session.config.stash.get(_LEFT_OUT, 0)
            reporter.write_line(
                f"No test ran: that is a failure{hint if left_out else ''}.", red=True
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --- Guards -------------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if tier(item.config) != "fast":
        return report
    refused = take_refusals()
    if refused:
        message = "\n".join(dict.fromkeys(refused))
        if report.failed:  # perhaps because the code under test swallowed the refusal
            report.sections.append(("fast tier", message))
        else:
            report.outcome = "failed"
            report.longrepr = message
    if report.when == "setup":
        item.stash[_SETUP_SECONDS] = report.duration
    elif report.when == "call" and report.passed and not _profile_chose_its_cost(item):
        took = item.stash.get(_SETUP_SECONDS, 0.0) + report.duration
        if took > FAST_TEST_SECONDS:
            report.outcome = "failed"
            report.longrepr = (
                f"{item.nodeid} took {took:.1f} s (set-up and call), over the fast tier's "
                f"{FAST_TEST_SECONDS:g} s: make it faster, or give it the full-tier marker "
                f"that says why it is slow ({', '.join(FULL_TIER)})."
            )
    return report


def _profile_chose_its_cost(item: pytest.Item) -> bool:
    from hypothesis import settings as hypothesis_settings

    is_property = hasattr(getattr(item, "obj", None), "hypothesis")
    return is_property and hypothesis_settings.get_current_profile_name() != "dev"


@contextlib.contextmanager
def guards() -> Iterator[None]:
    """Refuse, while the block runs, what only the full tier may do (for the whole fast-tier
    session; tests/test_tiers.py uses it directly). What was refused is also kept for
    ``take_refusals()``: code under test that swallows the error cannot hide it."""
    # The OpenAI SDK sends the machine's processor in a header: platform runs `uname -p` for it,
    # once per interpreter. Let it do so now, before the guards.
    platform.processor()
    patches: list[tuple[Any, str, Any]] = []

    def replace(owner: Any, name: str, new: Any) -> None:
        # As stored, so that a classmethod goes back as one; None: it was inherited.
        patches.append((owner, name, vars(owner).get(name)))
        setattr(owner, name, new)

    def guard(owner: Any, name: str, what: str) -> None:
        if not hasattr(owner, name):
            return  # not on this platform (os.forkpty, say)

        def refuse(*args: Any, **kwargs: Any) -> Any:
            if isinstance(owner, type) and args and isinstance(args[0], owner):
                args = args[1:]  # a method: leave self out of the message
            raise _refuse(f"{what} ({_describe(args)})")

        replace(owner, name, refuse)

    import psycopg  # libpq opens its own sockets: guard the door above them
    from celery.worker.worker import WorkController

    guard(subprocess.Popen, "__init__", "started a process")
    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system"):
        guard(os, name, f"os.{name}")
    guard(multiprocessing.process.BaseProcess, "start", "started a multiprocessing process")
    guard(WorkController, "__init__", "started a Celery worker")
    guard(psycopg, "connect", "connected to PostgreSQL")  # what Django calls
    guard(psycopg.Connection, "connect", "connected to PostgreSQL")
    for name in ("connect", "connect_ex"):
        replace(socket.socket, name, _guarded_connect(getattr(socket.socket, name)))
    try:
        yield
    finally:
        for owner, name, original in reversed(patches):
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)


def take_refusals() -> list[str]:
    """What the guards refused since the last call, and forget it."""
    with _lock:
        refused, _violations[:] = list(_violations), []
    return refused


def _guarded_connect(real: Callable[..., Any]) -> Callable[..., Any]:
    def connect(sock: socket.socket, address: Any) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host, port = address[0], address[1]
            if port in SERVICE_PORTS:
                raise _refuse(f"connected to {host}:{port}, a service port")
            if not _loopback(host):
                raise _refuse(f"connected to {host}:{port}, off this machine")
        return real(sock, address)

    return connect


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _describe(args: tuple[Any, ...]) -> str:
    text = repr(args[0]) if args else "no arguments"
    return text if len(text) < 200 else text[:200] + "…"
