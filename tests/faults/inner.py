"""A pytest run in a process of its own, for faults that need a fresh process: a deliberately
broken variant applied for a whole session, or a database server of the test's own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_pytest(*args: str, env: dict[str, str | None]) -> tuple[int, str]:
    """Run pytest (the full tier: whatever the guarding tests need) on ``args`` from the
    repository root; ``env`` adds (or, with None, removes) variables. Returns the exit code and
    the output."""
    environment = {**os.environ}
    for key, value in env.items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--tier=all", *args, "-p", "no:randomly"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return result.returncode, result.stdout + result.stderr
