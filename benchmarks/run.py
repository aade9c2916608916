"""``python -m benchmarks [--quick] [--only NAME ...] [--write-docs]``: every target, one table.

The full mode (``make bench``) judges the issue's targets as written. The quick mode
(``make bench-quick``, run by ``.ci/run``) uses smaller loads and fails only when a figure misses
its target by a wide margin (each row's ``Check.quick``, ×1.5–2): noise on a shared machine must
not fail CI, a real regression (a query per record, a blocking call in the stream, a pool that runs
jobs two at a time) must.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import platform
import re
import signal
import sys
import time
import traceback

from benchmarks.harness import ROOT, Check, Row, log, raise_open_files, services, table

#: Run order: the cheap in-process targets first, the thousands of streams last.
TARGETS = [
    "footprint",
    "render",
    "worker",
    "trigger",
    "throughput",
    "click",
    "pacing",
    "stream",
    "peers",
    "scale",
    "servers",
]
DOC = ROOT / "docs" / "benchmarks.md"
START = "<!-- bench-table:start (written by `python -m benchmarks --write-docs`) -->"
END = "<!-- bench-table:end -->"


def machine() -> str:
    import django

    memory_kb = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    cpu = platform.processor() or platform.machine()
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {memory_kb / 1024 / 1024:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"Django {django.get_version()}"
    )


def sort_key(row: Row) -> int:
    return int(row.target.split()[0])


def failure_row(name: str, exc: BaseException) -> Row:
    return Row(
        f"{NUMBERS[name]} {name}",
        "the target did not run",
        float("nan"),
        "",
        None,
        "",
        Check("figure", "==", 0, "runs"),
        note=f"{type(exc).__name__}: {exc}",
    )


NUMBERS = {
    "trigger": 1,
    "stream": 2,
    "throughput": 3,
    "render": 4,
    "worker": 5,
    "click": 6,
    "footprint": 7,
    "pacing": 8,
    "peers": 9,
    "scale": 10,
    "servers": 11,
}


def write_docs(text: str) -> None:
    current = DOC.read_text() if DOC.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(current):
        current += f"\n{START}\n{END}\n"
    DOC.write_text(pattern.sub(lambda _: f"{START}\n{text}\n{END}", current))
    log(f"wrote the table to {DOC.relative_to(ROOT)}")


def render_report(rows: list[Row], command: str, quick: bool, seconds: float) -> str:
    notes = [f"- **{row.target} · {row.name}**: {row.note}" for row in rows if row.note]
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    mode = "quick (CI margins)" if quick else "full (the issue's targets)"
    lines = [
        f"Command: `{command}` — {mode}, {seconds:.0f} s, {when}.",
        "",
        f"Machine: {machine()}.",
        "",
        table(rows),
    ]
    if notes:
        lines += ["", "Notes:", "", *notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small loads, CI margins")
    parser.add_argument("--only", action="append", choices=TARGETS, help="run only these")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args(argv)
    chosen = [name for name in TARGETS if not args.only or name in args.only]
    raise_open_files(40_000)
    # A shell without job control starts a background command (`make bench &`, nohup) with
    # Ctrl-C ignored, and an ignored signal stays ignored in every child: target 8's backfill
    # would then sleep through the Ctrl-C it is sent. Python's own handler is reset by exec.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.monotonic()
    rows: list[Row] = []
    with services() as found:
        for name in chosen:
            log(f"--- target {NUMBERS[name]}: {name}")
            module = importlib.import_module(f"benchmarks.{name}")
            began = time.monotonic()
            try:
                rows += module.run(found, args.quick)
            except Exception as exc:
                traceback.print_exc()
                rows.append(failure_row(name, exc))
            log(f"--- target {NUMBERS[name]}: {name} took {time.monotonic() - began:.0f} s")
    rows.sort(key=sort_key)
    for row in rows:
        row.judge(args.quick)
    command = "make bench-quick" if args.quick else "make bench"
    if args.only:
        command = "python -m benchmarks " + " ".join(
            ([] if not args.quick else ["--quick"]) + [f"--only {n}" for n in args.only]
        )
    report = render_report(rows, command, args.quick, time.monotonic() - started)
    print("\n" + report + "\n", flush=True)
    if args.write_docs:
        write_docs(report)
    failed = [row for row in rows if not row.passed]
    if failed:
        print(f"{len(failed)} figure(s) missed their target.", file=sys.stderr)
        return 1
    print("Every figure meets its target.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
