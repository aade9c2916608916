"""Run the suite's tiers, as `make test`, `make test-full`, `make test-all` and CI do.

    python runtests.py fast [pytest arguments]   # make test
    python runtests.py full [pytest arguments]   # make test-full
    python runtests.py all [pytest arguments]    # make test-all: fast, then full

fast: every test that runs inside the test process on SQLite (no subprocess, no real worker, no
  browser, no PostgreSQL or Redis), on pytest-xdist workers, in about half a minute. It needs
  nothing but Python; tests/support/tiers.py refuses what only the full tier may do.
full: the tests marked for the real services, once each, on PostgreSQL (127.0.0.1:5432), with
  Redis, real Celery workers, processes and Chromium; the install and broken-variant tests on a
  second worker beside the rest (tests/support/tiers.py, BESIDE). Without a reachable PostgreSQL
  it runs on SQLite and the tests that need PostgreSQL are skipped with a plain message; with
  CI=true that is a failure, as is any skip.
all: every test once: the fast tier, then the full tier.

PAGE_IMAGES_COVERAGE=1 runs pytest under coverage (branch coverage of src/, parallel data files,
subprocesses included); `make coverage` combines and reports them. PAGE_IMAGES_TEST_WORKERS sets
the fast tier's number of workers (default: the CPUs, at most 4; 0 runs either tier in one
process).
pytest's "no tests ran" (exit 5) is a failure. Extra arguments go to pytest, after ours.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

CI = os.environ.get("CI", "").lower() == "true"
PG = (
    os.environ.get("PAGE_IMAGES_PG_HOST", "127.0.0.1"),
    int(os.environ.get("PAGE_IMAGES_PG_PORT", "5432")),
)


def postgres_reachable() -> bool:
    try:
        with socket.create_connection(PG, timeout=2):
            return True
    except OSError:
        return False


def workers() -> str:
    default = min(4, os.cpu_count() or 1)
    return os.environ.get("PAGE_IMAGES_TEST_WORKERS", str(default))


def pytest(tier: str, database: str, *args: str) -> int:
    env = {**os.environ, "PAGE_IMAGES_TIER": tier, "PAGE_IMAGES_TEST_DB": database}
    command = [sys.executable, "-m", "pytest", f"--tier={tier}"]
    if os.environ.get("PAGE_IMAGES_COVERAGE") == "1":
        command[1:3] = ["-m", "coverage", "run", "-m", "pytest"]
    if tier == "fast":
        command += ["-n", workers()]
    elif tier == "full" and workers() != "0":
        # Two workers: the modules of tests/support/tiers.py's BESIDE on one, the rest on the
        # other, one test at a time.
        command += ["-n", "2"]
    print(f"\n=== django-page-images: the {tier} tier on {database} ===", flush=True)
    code = subprocess.call([*command, *args], env=env)
    if code == 5:
        print(f"pytest ran no test in the {tier} tier: that is a failure.", flush=True)
        return 1
    return code


def full(args: list[str]) -> int:
    if postgres_reachable():
        return pytest("full", "postgres", *args)
    if CI:
        print(f"PostgreSQL is not reachable at {PG[0]}:{PG[1]} and CI=true: failing.", flush=True)
        return 1
    print(
        f"\nPostgreSQL is not reachable at {PG[0]}:{PG[1]}: the full tier runs on SQLite, and "
        "the tests that need PostgreSQL are skipped.",
        flush=True,
    )
    return pytest("full", "sqlite", *args)


def main(argv: list[str]) -> int:
    tier, args = (
        (argv[0], argv[1:]) if argv[:1] in (["fast"], ["full"], ["all"]) else ("fast", argv)
    )
    failed = False
    if tier in ("fast", "all"):
        failed |= pytest("fast", "sqlite", *args) != 0
    if tier in ("full", "all"):
        failed |= full(args) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
