"""Target 4: rendering a page of containers.

In a child process pinned to one CPU, a template renders N records' containers
(``{% page_image %}``, then ``{% page_images_stream %}``) from a fresh queryset, for a fresh
logged-in user, as a view would; the baseline renders the same queryset as plain ``<img>`` tags.
Both run alternately, many times; the figures are medians. Queries are counted for 1 container
and for 200.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from benchmarks import fixtures
from benchmarks.harness import SERVER_CPU, Check, Row, child_env, log, run_python

if TYPE_CHECKING:
    from benchmarks.harness import Services

CONTAINERS = (
    "{% load page_images %}{% for article in articles %}{% page_image article %}{% endfor %}"
    "{% page_images_stream %}"
)
PLAIN = (
    "{% for article in articles %}"
    '<img src="{{ article.image.url }}" alt="{{ article.text }}">'
    "{% endfor %}"
)

CHILD = """
import json, sys
from benchmarks.render import child
print(json.dumps(child(*json.loads(sys.argv[1]))))
"""


def child(pks: list[int], empty_pks: list[int], user_pk: int, repeats: int) -> dict[str, object]:
    """Runs in the measured process: time both templates, count the queries."""
    import time

    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.db import connection
    from django.template import Context, Template
    from django.test import AsyncRequestFactory
    from django.test.utils import CaptureQueriesContext

    from benchmarks.site.models import Article

    containers, plain = Template(CONTAINERS), Template(PLAIN)

    def render(template: Template, count: int, records: list[int] = pks) -> tuple[float, int, int]:
        request = AsyncRequestFactory().get("/stories/")  # an ASGIRequest: the page streams
        request.user = User.objects.get(pk=user_pk)  # fresh, as in a request: no perm cache
        articles = Article.objects.filter(pk__in=records[:count])
        with CaptureQueriesContext(connection) as queries:
            start = time.perf_counter()
            html = template.render(Context({"articles": articles, "request": request}))
            elapsed = time.perf_counter() - start
        return elapsed, len(queries.captured_queries), len(html)

    connection.ensure_connection()
    for _ in range(5):  # warm: template caches, URL resolver, translations
        render(containers, len(pks))
        render(plain, len(pks))
    times: dict[str, list[float]] = {"containers": [], "plain": []}
    for _ in range(repeats):
        times["containers"].append(render(containers, len(pks))[0])
        times["plain"].append(render(plain, len(pks))[0])
    # Queries: containers with no picture yet show a chip, so they ask the permission too.
    one = render(containers, 1, empty_pks)
    many = render(containers, len(pks), empty_pks)
    plain_many = render(plain, len(pks))
    ready_many = render(containers, len(pks))
    empty = sorted(render(containers, len(pks), empty_pks)[0] for _ in range(repeats // 3 + 1))
    return {
        "empty": empty[len(empty) // 2] * 1000,
        "containers": sorted(times["containers"])[repeats // 2] * 1000,
        "plain": sorted(times["plain"])[repeats // 2] * 1000,
        "queries_one": one[1],
        "queries_many": many[1],
        "queries_plain": plain_many[1],
        "bytes_many": ready_many[2],
        "bytes_plain": plain_many[2],
    }


def run(services: Services, quick: bool) -> list[Row]:
    count = 200
    repeats = 30 if quick else 100
    pks = fixtures.articles(count, with_image=True, prefix="render")
    empty_pks = fixtures.articles(count, prefix="render-empty")
    user = fixtures.editor()
    log(f"4 render: {count} containers vs {count} <img>, x{repeats} each")
    result = run_python(
        CHILD.replace("sys.argv[1]", repr(json.dumps([pks, empty_pks, user.pk, repeats]))),
        child_env(services),
        cpu=SERVER_CPU,
        timeout=600,
    )
    target = "4 render"
    return [
        Row(
            target,
            f"queries, {count} containers",
            float(result["queries_many"]),
            "",
            float(result["queries_one"]),
            "1 container",
            Check("ratio", "<=", 1.0, "no more than for 1", quick=1.0),
            fmt="{:.0f}",
            note="records without a picture, so each container asks the permission (the "
            f"query, then the user's permissions once); {count} plain <img> tags: "
            f"{result['queries_plain']} query",
        ),
        Row(
            target,
            f"render time, {count} containers",
            result["containers"],
            "ms",
            result["plain"],
            f"{count} plain <img>",
            Check("ratio", "<=", 2.0, "≤ 2×", quick=1.5),
            note=f"records with a picture; HTML {result['bytes_many'] // 1024} KB vs "
            f"{result['bytes_plain'] // 1024} KB; medians, PostgreSQL, user and queryset fresh "
            f"for each render; {count} containers with a chip instead: {result['empty']:.1f} ms",
        ),
    ]
