"""Servers of a test's own: a free port, and a redis-server the test may kill, freeze and restart.

Fault tests must never stop the machine's shared Redis (6379) or PostgreSQL, which other tests
and other people use; they start a private server here instead and break only that one.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from typing import TYPE_CHECKING

import pytest
import redis

from tests import machine

if TYPE_CHECKING:
    from pathlib import Path


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago, for a server of the test's own."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def unused_port() -> int:
    """A port on 127.0.0.1 where nothing listens: a connection to it is refused at once."""
    port = free_port()
    assert not machine.reachable("127.0.0.1", port)
    return port


class OwnRedis:
    """A redis-server of the test's own, on a free port, that the test may kill and restart."""

    def __init__(self, folder: Path) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            message = "redis-server is not installed"
            if machine.CI:
                pytest.fail(f"{message}, and CI=true forbids skipping", pytrace=False)
            pytest.skip(message)
        self.executable = executable
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.executable,
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--daemonize", "no"),
                *("--dir", str(self.folder)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        try:
            deadline = time.monotonic() + 10
            while True:
                with contextlib.suppress(redis.ConnectionError):
                    if client.ping():
                        return
                if time.monotonic() > deadline or self.process.poll() is not None:
                    pytest.fail(f"redis-server did not start on port {self.port}", pytrace=False)
                time.sleep(0.02)
        finally:
            client.close()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: no goodbye to the clients, as in a crash
        self.process.wait(timeout=5)

    def freeze(self, frozen: bool) -> None:
        """SIGSTOP: connections stay open and nothing answers, as behind a dead network link."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP if frozen else signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            self.process.wait(timeout=5)
