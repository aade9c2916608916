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
import threading
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


def start_relayed(*args: str, ready_line: bytes) -> tuple[subprocess.Popen[bytes], threading.Event]:
    """Start a process whose output this one relays, and learn when it prints ``ready_line``."""
    process = subprocess.Popen(
        [sys.executable, *args], cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    ready = threading.Event()

    def relay() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
            if ready_line in line:
                ready.set()

    threading.Thread(target=relay, daemon=True).start()
    return process, ready


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


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until_ready(
    host: str,
    port: int,
    worker_ready: threading.Event,
    processes: list[subprocess.Popen[bytes]],
    timeout: float = 60,
) -> None:
    """Until the site answers and the worker has said it is ready (its banner is above)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and all(p.poll() is None for p in processes):
        if worker_ready.is_set() and listening(host, port):
            return
        time.sleep(0.2)


def main() -> int:
    port = os.environ.get("PORT", "8000")
    host = os.environ.get("HOST", "127.0.0.1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")
    run("migrate", "--noinput", "--verbosity", "0")
    run("seed_demo")
    worker, worker_ready = start_relayed(
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
        ready_line=b" ready.",
    )
    processes = [
        worker,
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
    # Said once the site answers and the worker is ready, so that its banner, which comes
    # first, does not scroll the address away.
    wait_until_ready(host, int(port), worker_ready, processes)
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
