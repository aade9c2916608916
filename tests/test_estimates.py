"""The usual wait a generating container shows, read from the history's finished jobs."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from django.utils.translation import override

from page_images import estimates
from page_images.conf import app_settings
from page_images.history import Generation, content_type_of
from page_images.rendering import container_context

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    # The estimate is kept in the default cache: no test may read another's.
    cache.clear()
    yield
    cache.clear()


def finished(record, seconds, *, size="256x256", status=Generation.Status.DONE, backend=None):
    started = timezone.now() - timedelta(hours=1)
    return Generation.objects.create(
        content_type=content_type_of(record),
        object_id=str(record.pk),
        token=uuid.uuid4(),
        prompt="A red fox",
        backend=backend or app_settings.BACKEND,
        size=size,
        status=status,
        started_at=started,
        finished_at=started + timedelta(seconds=seconds),
    )


def test_nothing_is_said_before_enough_jobs_have_finished(page):
    for seconds in (12, 20, 31, 44):
        finished(page, seconds)
    assert estimates.typical_wait(app_settings.BACKEND, "256x256") is None


def test_the_usual_wait_spans_the_middle_of_the_finished_jobs_rounded_outwards(page):
    for seconds in (12, 17, 21, 24, 26, 29, 33, 36, 38.5, 95):
        finished(page, seconds)
    # The 10th and 90th percentiles (17 s and 38.5 s), to 5 s outwards; the slowest is left out.
    assert estimates.typical_wait(app_settings.BACKEND, "256x256") == (15, 40)


def test_only_finished_jobs_of_the_same_backend_and_size_count(page):
    for seconds in (20, 20, 20, 20):
        finished(page, seconds)
    finished(page, 20, size="1024x1024")
    finished(page, 20, status=Generation.Status.FAILED)
    finished(page, 20, backend="elsewhere.Backend")
    assert estimates.typical_wait(app_settings.BACKEND, "256x256") is None
    finished(page, 20)
    cache.clear()  # "not yet" is kept for CACHE_SECONDS, like any estimate
    assert estimates.typical_wait(app_settings.BACKEND, "256x256") == (20, 20)


def test_the_estimate_is_kept_so_a_page_asks_the_history_once(page, django_assert_num_queries):
    for seconds in (20, 25, 30, 35, 40):
        finished(page, seconds)
    with django_assert_num_queries(1):
        first = estimates.typical_wait(app_settings.BACKEND, "256x256")
    with django_assert_num_queries(0):
        assert estimates.typical_wait(app_settings.BACKEND, "256x256") == first
    # And "nothing to say" is kept too.
    with django_assert_num_queries(1):
        assert estimates.typical_wait(app_settings.BACKEND, "64x64") is None
    with django_assert_num_queries(0):
        assert estimates.typical_wait(app_settings.BACKEND, "64x64") is None


def test_a_failing_cache_costs_a_query_not_the_page(page, monkeypatch, caplog):
    for seconds in (20, 25, 30, 35, 40):
        finished(page, seconds)

    def broken(*args, **kwargs):
        raise ConnectionError("the cache is down")

    monkeypatch.setattr(estimates.cache, "get", broken)
    assert estimates.typical_wait(app_settings.BACKEND, "256x256") == (20, 40)
    monkeypatch.undo()
    monkeypatch.setattr(estimates.cache, "set", broken)
    assert estimates.typical_wait(app_settings.BACKEND, "256x256") == (20, 40)
    assert "the cache failed" in caplog.text


@pytest.mark.parametrize(
    ("low", "high", "said"),
    [
        (20, 40, "usually 20–40 s"),
        (25, 30, "usually about 30 s"),
        (40, 95, "usually 1–2 min"),
        (130, 170, "usually 2–3 min"),
        (170, 185, "usually about 3 min"),
        (60, 300, "usually 1–5 min"),
    ],
)
def test_the_wait_is_said_in_seconds_or_minutes(low, high, said):
    assert estimates.wait_text(low, high) == said


def test_the_wait_is_said_in_the_editors_language():
    with override("de"):
        assert estimates.wait_text(20, 40) == "meist 20–40 s"
        assert estimates.wait_text(170, 185) == "meist etwa 3 min"


def test_a_generating_container_says_the_usual_wait(editor, make_page):
    done = make_page()
    for seconds in (20, 25, 30, 35, 40):
        finished(done, seconds)
    waiting = make_page(image_generating=True, image_claimed_at=timezone.now())
    context = container_context(None, waiting, user=editor)
    assert context["usual_wait"] == "usually 20–40 s"
    assert container_context(None, done, user=editor)["usual_wait"] == ""  # not generating
