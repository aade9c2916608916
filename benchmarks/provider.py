"""The fake image provider in a process of its own, as a remote provider would be.

In the orchestrating process its threads would take the GIL from the work being timed there, such as
queueing the jobs. It answers every call with one picture, drawn once at start: drawing and encoding
a 1024x1024 PNG costs ~11 ms of CPU, which a real provider spends on its own machines and which here
would come out of the two cores the workers are measured on (100 calls arriving together kept one of
them busy for over a second). The workers still decode each answer in full. ``python -m
benchmarks.provider LATENCY SIDE COUNT_FILE`` prints its ``api_base``, serves until SIGTERM, then
writes how many generation calls it received to ``COUNT_FILE``.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.harness import PYTHON, ROOT, pin, stop_process

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


@contextlib.contextmanager
def provider_process(
    latency: float,
    side: int,
    folder: Path,
    cpu: int | None = None,
    rate_limit: tuple[int, float] | None = None,
) -> Iterator[tuple[str, Callable[[], int]]]:
    """``(api_base, calls)``: ``calls()`` is the number of generation calls, once it has stopped.

    With ``rate_limit`` ``(N, seconds)`` it answers 429 past N calls in any ``seconds``; how many
    it refused is :func:`refused` of the same folder, once it has stopped."""
    count_file = folder / "provider-calls.txt"
    limit = [f"{rate_limit[0]}/{rate_limit[1]}"] if rate_limit else []
    child = subprocess.Popen(
        [PYTHON, "-m", "benchmarks.provider", str(latency), str(side), str(count_file), *limit],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    pin(cpu, child.pid)
    try:
        assert child.stdout is not None
        api_base = child.stdout.readline().strip()
        if not api_base:
            raise RuntimeError(f"the fake provider did not start (exit {child.wait()})")

        def calls() -> int:
            stop_process(child)
            return int(count_file.read_text())

        yield api_base, calls
    finally:
        stop_process(child)


def refused(folder: Path) -> int:
    """How many calls the last provider of ``folder`` answered 429 (its ``rate_limit``)."""
    return int((folder / "provider-calls.txt.429").read_text())


def refused_at(folder: Path) -> list[float]:
    """When (``time.monotonic()``, the same clock in every process) it answered them."""
    return [float(at) for at in (folder / "provider-calls.txt.429-at").read_text().split()]


def main(argv: list[str]) -> None:
    from page_images.testing import FakeImageProvider, Respond, png_bytes

    latency, side, count_file = float(argv[0]), int(argv[1]), Path(argv[2])
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    refusals: list[float] = []

    class Provider(FakeImageProvider):
        def _refuse(self) -> float | None:
            wait = super()._refuse()
            if wait is not None:
                refusals.append(time.monotonic())
            return wait

    with Provider(image_size=(side, side), latency=latency) as provider:
        provider.default = Respond.b64(png_bytes(side, side))
        if len(argv) > 3:
            limit, _, window = argv[3].partition("/")
            provider.rate_limit = (int(limit), float(window))
        print(provider.api_base, flush=True)
        stopping.wait()
        count_file.with_name(count_file.name + ".429").write_text(str(provider.rate_limited))
        count_file.with_name(count_file.name + ".429-at").write_text(
            " ".join(f"{moment:.3f}" for moment in refusals)
        )
        count_file.write_text(str(provider.generation_calls))


if __name__ == "__main__":
    main(sys.argv[1:])
