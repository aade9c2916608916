"""Of any number of concurrent clicks on one record, exactly one enqueues a job.

Threads, each with its own PostgreSQL connection, are released together by a barrier and call the
real request_generation, which publishes to the real Redis. Counted twice: by Celery's own publish
signal, and by the length of the job queue in Redis.
"""

from __future__ import annotations

import threading

import pytest
import redis
from django.db import connection

from page_images import claims, queueing
from tests.machine import redis_url
from tests.reliability import case
from tests.support.jobs import celery_app
from tests.testapp.models import Page

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

CLICKS = 50
ROUNDS = 20


def click_together(pk: int) -> list[object]:
    barrier = threading.Barrier(CLICKS)
    results: list[object] = []
    lock = threading.Lock()

    def click() -> None:
        try:
            instance = Page.objects.get(pk=pk)
            barrier.wait(timeout=30)
            outcome: object = queueing.request_generation(instance)
        except Exception as exc:  # recorded, then asserted: a failing click must fail the test
            outcome = exc
        finally:
            connection.close()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=click) for _ in range(CLICKS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@case(
    "concurrency",
    "50 threads click one record at once, 20 rounds, on PostgreSQL and Redis",
    "Exactly one claim and one job per round, counted at Celery's publish and in Redis's queue.",
)
def test_fifty_concurrent_clicks_enqueue_exactly_one_job(page, published):
    assert connection.vendor == "postgresql"
    url = redis_url()
    client = redis.Redis.from_url(url)
    with celery_app(url) as app:
        queue = app.conf.task_default_queue
        try:
            for round_number in range(ROUNDS):
                published.clear()
                results = click_together(page.pk)
                errors = [r for r in results if isinstance(r, Exception)]
                assert errors == [], errors
                winners = [r for r in results if r is not None]
                assert len(results) == CLICKS
                assert len(winners) == 1, f"round {round_number}: {len(winners)} winners"
                assert len(published) == 1, f"round {round_number}: {len(published)} jobs published"
                assert client.llen(queue) == round_number + 1
                page.refresh_from_db()
                assert page.image_claim_token == winners[0]
                claims.release_claim(Page, page.pk, winners[0])
        finally:
            client.delete(queue)
