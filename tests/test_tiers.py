"""The fast tier's guards refuse what only the full tier may do, even when the error is swallowed.

The guards are tests/support/tiers.py's; `make test` keeps them up for its whole session. Here
they are put up for one block, so these tests mean the same in either tier; what a guard refused
is taken back with ``take_refusals()``, or the fast tier would fail the test for it. The last
test runs pytest itself on a small sample, to show the whole of it: a refused test fails, a
marked one is left out and counted, a slow one fails, and a run of nothing is a failure.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker

from tests.support.jobs import celery_app
from tests.support.tiers import TierViolation, _guarded_connect, guards, take_refusals

ROOT = Path(__file__).resolve().parent.parent


def refused_by(action) -> str:
    """Call ``action`` under the guards; it must be refused. Returns what the guards kept.

    ``action`` names what it calls inside its body, so that the guarded function is looked up
    once the guards are up (``os.fork`` passed as a value would be the real one, and fork).
    """
    with guards(), pytest.raises(TierViolation):
        action()
    (refusal,) = take_refusals()
    return refusal


def test_a_process_is_refused_however_it_is_started():
    assert "started a process (['true'])" in refused_by(lambda: subprocess.run(["true"]))
    assert "os.system ('true')" in refused_by(lambda: os.system("true"))
    assert "os.fork" in refused_by(lambda: os.fork())
    process = multiprocessing.get_context("spawn").Process(target=print)
    assert "multiprocessing" in refused_by(lambda: process.start())


def test_a_celery_worker_is_refused():
    def start(app):
        with start_worker(app, pool="solo", perform_ping_check=False):
            pass  # never reached

    with celery_app("memory://") as app:
        assert "started a Celery worker" in refused_by(lambda: start(app))


def test_a_refusal_is_kept_when_the_code_swallows_it():
    # As code under test might: it catches everything; the guard has kept the refusal anyway.
    with guards(), contextlib.suppress(Exception):
        subprocess.run(["true"], check=False)
    assert [r.split(" (")[0] for r in take_refusals()] == ["started a process"]


def test_services_and_other_hosts_are_refused_before_any_packet():
    attempts = []
    connect = _guarded_connect(lambda sock, address: attempts.append(address))
    with socket.socket() as sock:
        for address in [("127.0.0.1", 6379), ("127.0.0.1", 5432), ("::1", 5672)]:
            with pytest.raises(TierViolation, match="a service port"):
                connect(sock, address)
        with pytest.raises(TierViolation, match="off this machine"):
            connect(sock, ("192.0.2.1", 443))  # TEST-NET-1: never reached, whatever happens
        connect(sock, ("127.0.0.1", 8000))  # another loopback port: let through
        connect(sock, ("localhost", 8000))
    assert attempts == [("127.0.0.1", 8000), ("localhost", 8000)]
    assert len(take_refusals()) == 4


def test_a_server_on_loopback_in_this_process_is_fine():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        accepted = threading.Thread(target=lambda: listener.accept()[0].close())
        accepted.start()
        with guards(), socket.create_connection(listener.getsockname(), timeout=5):
            pass
        accepted.join(timeout=5)
    assert take_refusals() == []


def test_postgresql_is_refused_though_libpq_opens_its_own_socket():
    import psycopg

    refusal = refused_by(lambda: psycopg.connect("host=127.0.0.1 user=postgres"))
    assert "connected to PostgreSQL" in refusal


SAMPLE = """
import subprocess
import time

import pytest


def test_in_process():
    pass


def test_starts_a_process():
    subprocess.run(["true"])


def test_swallows_the_refusal():
    try:
        subprocess.run(["true"])
    except Exception:
        pass


def test_waits_on_the_clock():
    time.sleep(0.5)


@pytest.mark.process
def test_marked():
    subprocess.run(["true"], check=True)
"""


def run_sample(folder: Path, *args: str) -> tuple[int, str]:
    (folder / "test_sample.py").write_text(textwrap.dedent(SAMPLE))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PAGE_IMAGES_FAST_TEST_SECONDS": "0.3"}
    for name in ("DJANGO_SETTINGS_MODULE", "PAGE_IMAGES_TIER", "PAGE_IMAGES_TEST_DB", "CI"):
        env.pop(name, None)
    command = [sys.executable, "-m", "pytest", "-p", "tests.support.tiers", "-p", "no:randomly"]
    command += ["-p", "no:cacheprovider", "-p", "no:django", "-q", "-rfE", *args]
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.process
def test_the_fast_tier_fails_what_it_refuses_and_counts_what_it_leaves_out(tmp_path):
    code, output = run_sample(tmp_path)
    assert code == 1, output
    failed = {line.split()[1].split("::")[1] for line in output.splitlines() if "FAILED" in line}
    expected = {"test_starts_a_process", "test_swallows_the_refusal", "test_waits_on_the_clock"}
    assert failed == expected, output
    assert "1 passed" in output
    assert "1 test of the full tier not run: make test-full" in output
    assert "over the fast tier's 0.3 s" in output
    assert "took 0.5 s" in output or "took 0.6 s" in output, output

    code, output = run_sample(tmp_path, "-k", "marked")
    assert code == 1, output
    assert "No test ran: that is a failure (every test selected is in the full tier" in output

    code, output = run_sample(tmp_path, "--tier=full")
    assert code == 0, output
    assert "1 passed" in output
    assert "4 tests of the fast tier not run here: make test" in output

    code, output = run_sample(tmp_path, "--tier=all", "-k", "marked or in_process")
    assert code == 0, output
    assert "2 passed" in output
