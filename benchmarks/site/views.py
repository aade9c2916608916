"""The baselines' views: behind the same middleware and authentication as the app's own."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpResponse

if TYPE_CHECKING:
    from django.http import HttpRequest


def empty(request: HttpRequest) -> HttpResponse:
    """The trigger view's baseline: the same POST, CSRF check, login and permission, then nothing.

    The permission is the one the trigger view asks by default (the model's change permission):
    "the same auth" is authentication and authorisation, as django.contrib.auth does both.
    """
    if not request.user.is_authenticated or not request.user.has_perm("bench.change_article"):
        return HttpResponse(status=403)
    return HttpResponse("")


def login_only(request: HttpRequest) -> HttpResponse:
    """A second, lighter baseline for context: the login check alone."""
    if not request.user.is_authenticated:
        return HttpResponse(status=403)
    return HttpResponse("")


def hello(request: HttpRequest) -> HttpResponse:
    """The stream's baselines: the cheapest request the server can answer."""
    return HttpResponse("ok")


def modules(request: HttpRequest) -> HttpResponse:
    """Which provider SDKs this process has imported: the web process must never hold litellm."""
    import json
    import sys

    loaded = sorted(
        name for name in sys.modules if name.split(".")[0] in {"litellm", "openai", "tiktoken"}
    )
    return HttpResponse(json.dumps(loaded), content_type="application/json")


def parts(request: HttpRequest) -> HttpResponse:
    """A profiling aid (``BENCH_PARTS=1``, see :mod:`benchmarks.parts`): each part's CPU so far."""
    import json
    import os

    if os.environ.get("BENCH_PARTS") != "1":
        return HttpResponse("start the server with BENCH_PARTS=1", status=404)
    from benchmarks.parts import take

    return HttpResponse(json.dumps(take()), content_type="application/json")


_marks: dict[str, object] = {}


def memory(request: HttpRequest) -> HttpResponse:
    """A profiling aid (``BENCH_TRACEMALLOC=1``): ``?mark`` remembers a tracemalloc snapshot;
    without it, the allocations grown since the mark, by line, largest first."""
    import tracemalloc

    if not tracemalloc.is_tracing():
        return HttpResponse("start the server with BENCH_TRACEMALLOC=1", status=404)
    snapshot = tracemalloc.take_snapshot()
    if "mark" in request.GET:
        _marks["base"] = snapshot
        return HttpResponse("marked")
    base = _marks.get("base")
    if not isinstance(base, tracemalloc.Snapshot):
        return HttpResponse("mark first", status=400)
    grouping = request.GET.get("by", "lineno")
    stats = snapshot.compare_to(base, grouping)
    lines = []
    for stat in stats[: int(request.GET.get("top", "40"))]:
        lines.append(f"{stat.size_diff / 1024:10.1f} KB {stat.count_diff:+8d}  {stat.traceback}")
        if grouping == "traceback":
            frames = stat.traceback.format(most_recent_first=True)[::2][:6]
            lines += [f"{'':24}{line.strip()}" for line in frames]
    total = sum(stat.size_diff for stat in stats)
    return HttpResponse(
        f"total {total / 1024:.0f} KB\n" + "\n".join(lines), content_type="text/plain"
    )
