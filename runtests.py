"""Run the suite the way `make test` and CI do: once on SQLite, once on the real PostgreSQL.

The SQLite pass needs nothing but Python. The PostgreSQL pass runs everything again on the real
server, including the tests marked `postgres` (the race test) that SQLite cannot mean anything for.
Without a reachable server the PostgreSQL pass is skipped with a plain message, unless
CI=true, where that is a failure. pytest's "no tests ran" (exit 5) is a failure too.
Extra arguments go to pytest.
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


def pytest(database: str, *args: str) -> int:
    env = {**os.environ, "PAGE_IMAGES_TEST_DB": database}
    print(f"\n=== django-page-images tests on {database} ===", flush=True)
    code = subprocess.call([sys.executable, "-m", "pytest", *args], env=env)
    if code == 5:
        print(f"pytest collected no tests on {database}: that is a failure.", flush=True)
        return 1
    return code


def postgres_reachable() -> bool:
    try:
        with socket.create_connection(PG, timeout=2):
            return True
    except OSError:
        return False


def main(args: list[str]) -> int:
    failures = 0
    failures += pytest("sqlite", "-m", "not postgres", *args) != 0
    if postgres_reachable():
        failures += pytest("postgres", *args) != 0
    elif CI:
        print(f"PostgreSQL is not reachable at {PG[0]}:{PG[1]} and CI=true: failing.", flush=True)
        failures += 1
    else:
        print(
            f"\nSKIPPED: the PostgreSQL pass (no server at {PG[0]}:{PG[1]}). "
            "The SQLite pass above is all that ran.",
            flush=True,
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
