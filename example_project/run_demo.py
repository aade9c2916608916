"""`make demo`: migrate, seed, then run the ASGI server and a Celery worker until Ctrl-C.

Nothing else is needed: SQLite, Celery's filesystem transport and the file event bus live in
example_project/.demo/. PORT picks the port (default 8000). Ctrl-C (or SIGTERM) stops both
processes; a process that does not stop within 10 s is killed, so nothing is left running.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import FrameType

HERE = Path(__file__).resolve().parent


def run(*args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=HERE, check=True)


def start(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *args], cwd=HERE)


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + 10
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_listening(
    host: str, port: int, processes: list[subprocess.Popen[bytes]], timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and all(p.poll() is None for p in processes):
        try:
            with socket.create_connection((host, port), timeout=0.5):
                time.sleep(0.5)  # the worker's banner, printed at about the same moment
                return
        except OSError:
            time.sleep(0.2)


def main() -> int:
    port = os.environ.get("PORT", "8000")
    host = os.environ.get("HOST", "127.0.0.1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")
    run("migrate", "--noinput", "--verbosity", "0")
    run("seed_demo")
    processes = [
        start(
            "-m",
            "celery",
            "-A",
            "example",
            "worker",
            "--pool=threads",
            "--concurrency=4",
            "--loglevel=INFO",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ),
        start(
            "-m",
            "uvicorn",
            "example.asgi:application",
            "--host",
            host,
            "--port",
            port,
            "--log-level",
            "warning",
            # An open tab holds its event stream: without this, Ctrl-C would wait for it.
            "--timeout-graceful-shutdown",
            "1",
        ),
    ]

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    # Said once the site answers, so that the worker's banner does not scroll it away.
    wait_until_listening(host, int(port), processes)
    print(
        f"\n  django-page-images demo: http://{host}:{port}/\n"
        "  Log in as demo / demo. Ctrl-C stops it.\n",
        flush=True,
    )
    try:
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
        print("A demo process stopped on its own; stopping the others.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping the demo…", flush=True)
        return 0
    finally:
        stop(processes)


if __name__ == "__main__":
    sys.exit(main())
