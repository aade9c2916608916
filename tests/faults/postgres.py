"""A PostgreSQL server of the test's own, for faults the machine's shared server must not carry.

The shared server allows 100 connections, fewer than a storm of 100 concurrent clicks plus the
worker needs; a test never reconfigures or restarts it, so it starts its own with ``initdb`` and
``pg_ctl`` on a free port, and throws it away afterwards.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests import machine
from tests.servers import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator


def _binaries() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates else None


INITDB_OPTIONS = ("-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")


@contextlib.contextmanager
def own_postgres(max_connections: int = 300) -> Iterator[int]:
    """Start a throwaway server on 127.0.0.1 (trust auth, user postgres); yield its port."""
    binaries = _binaries()
    if binaries is None:
        message = "PostgreSQL's initdb/pg_ctl are not installed"
        if machine.CI:
            pytest.fail(f"{message}, and CI=true forbids skipping", pytrace=False)
        pytest.skip(message)
    # initdb refuses to run as root: as root, run it as the postgres user, in a folder it owns.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="page_images_pg_"))
    if as_user:
        shutil.chown(folder, "postgres")
    data, log, port = folder / "data", folder / "server.log", free_port()
    subprocess.run(
        [*as_user, str(binaries / "initdb"), "-D", str(data), *INITDB_OPTIONS],
        check=True,
        capture_output=True,
        timeout=120,
    )
    options = (
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 "
        f"-c max_connections={max_connections} -c fsync=off -c synchronous_commit=off"
    )
    pg_ctl = [*as_user, str(binaries / "pg_ctl"), "-D", str(data)]
    subprocess.run(
        [*pg_ctl, "-o", options, "-l", str(log), "-w", "-t", "60", "start"],
        check=True,
        capture_output=True,
        timeout=90,
    )
    try:
        yield port
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
