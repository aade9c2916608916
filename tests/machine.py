"""Finding the machine's real services, and refusing to skip them under CI.

On a contributor's laptop without PostgreSQL or Redis the tests that need them skip with a reason
that names the missing service; with CI=true the same test fails instead, because CI must prove
the real thing.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest

CI = os.environ.get("CI", "").lower() == "true"
REDIS_HOST = os.environ.get("PAGE_IMAGES_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("PAGE_IMAGES_REDIS_PORT", "6379"))
#: A database number of its own, so the suite never touches other users of the shared server.
REDIS_DB = int(os.environ.get("PAGE_IMAGES_REDIS_DB", "11"))
#: Headless Chromium (Debian's ``chromium``), as the browser tests and the click benchmark start it.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require(name: str, host: str, port: int) -> None:
    """Skip (laptop) or fail (CI) when ``name`` is not listening on host:port."""
    if reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if CI:
        pytest.fail(f"{message}, and CI=true forbids skipping it", pytrace=False)
    pytest.skip(f"{message}: skipped")


def redis_url() -> str:
    require("Redis", REDIS_HOST, REDIS_PORT)
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
