"""The shared budget (page_images.pacing): its Lua booking against a real Redis, its fallbacks,
and, through a real Celery worker, LiteLLM and the fake provider enforcing its limit, the job
waiting for its turn instead of provoking 429s."""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from types import SimpleNamespace

import pytest
import redis

from page_images import jobs, pacing
from page_images.backends.litellm import retry_after
from page_images.exceptions import GenerationError, TransientGenerationError
from tests.machine import redis_url
from tests.support.jobs import assert_picture, real_worker_only, settled, wait_for

MODEL = "openai/gpt-image-1"
needs_redis = pytest.mark.redis


@pytest.fixture(autouse=True)
def _closed():
    """Every test leaves no Redis connection of the budgets open (ResourceWarning otherwise)."""
    yield
    pacing.close()


@pytest.fixture
def paced(settings):
    """RATE_LIMITS for one model of its own (a fresh key per test) on the machine's Redis."""
    model = f"test/{uuid.uuid4().hex[:8]}"

    def configure(**limit):
        settings.PAGE_IMAGES = {
            **settings.PAGE_IMAGES,
            "RATE_LIMITS": {model: limit},
            "PACING_REDIS_URL": redis_url(),
        }
        return model

    return configure


# --- The booking, on a real Redis -------------------------------------------------------------


@needs_redis
def test_bookings_are_spaced_evenly_at_the_limit(paced):
    model = paced(requests_per_minute=10, window=1.0)
    limit = pacing.limit_for(model)
    waits = [pacing.book(model, 1, None).wait for _ in range(5)]
    spacing = (1.0 + limit.margin) / 10
    assert waits[0] < 0.05
    for before, after in itertools.pairwise(waits):
        assert after - before == pytest.approx(spacing, abs=0.02)


@needs_redis
def test_pictures_per_window_count_each_call_by_its_pictures(paced):
    model = paced(images_per_minute=4, window=1.0)
    limit = pacing.limit_for(model)
    first = pacing.book(model, 4, None)
    second = pacing.book(model, 1, None)
    # Four pictures fill the window: the next call waits for the first to leave it.
    assert second.at - first.at == pytest.approx(1.0 + limit.margin, abs=0.02)


@needs_redis
def test_the_window_holds_even_when_spacing_does_not(paced):
    model = paced(requests_per_minute=2, images_per_minute=100, window=1.0)
    limit = pacing.limit_for(model)
    times = [pacing.book(model, 1, None).at for _ in range(3)]
    assert times[2] - times[0] >= 1.0 + limit.margin - 0.01


@needs_redis
def test_a_pause_moves_every_booking_after_it(paced):
    model = paced(requests_per_minute=1000)
    pacing.pause(model, 3.0)
    pacing.pause(model, 1.0)  # a shorter pause never shortens a longer one
    assert pacing.book(model, 1, None).wait == pytest.approx(3.0, abs=0.1)


@needs_redis
def test_a_wait_longer_than_max_wait_is_not_booked(paced, settings):
    model = paced(requests_per_minute=1, window=100.0)
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "PACING_MAX_WAIT": 50}
    assert pacing.book(model, 1, None).booked
    refused = pacing.book(model, 1, None)
    assert not refused.booked
    assert refused.wait > 50
    assert pacing.book(model, 1, None).wait == pytest.approx(refused.wait, abs=0.1)


@needs_redis
def test_a_booked_slot_is_kept_while_ahead_and_rebooked_when_missed(paced):
    model = paced(requests_per_minute=10, window=1.0)
    booking = pacing.book(model, 1, None)
    later = pacing.book(model, 1, None)
    kept = pacing.book(model, 1, later.at)
    assert kept.at == later.at
    assert 0 < kept.wait <= later.wait
    missed = pacing.book(model, 1, booking.at - 5)  # came back five seconds too late
    assert missed.at > later.at


def test_nothing_is_paced_without_limits_or_without_redis(settings):
    assert pacing.budgets() is None
    assert pacing.book(MODEL, 1, None) is None
    settings.PAGE_IMAGES = {
        **settings.PAGE_IMAGES,
        "RATE_LIMITS": {MODEL: {"requests_per_minute": 5}},
        "EVENTS": None,
    }
    assert pacing.budgets() is None
    assert pacing.book(MODEL, 1, None) is None
    pacing.pause(MODEL, 5)  # nothing to pause: no error either
    pacing.pause("another/model", 5)


def test_the_redis_falls_back_to_the_event_bus(settings):
    url = "redis://127.0.0.1:1/3"
    bus = {"BACKEND": "page_images.events.redis.RedisBus", "OPTIONS": {"url": url}}
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "EVENTS": bus}
    assert pacing.redis_url() == url
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "PACING_REDIS_URL": "redis://elsewhere/1"}
    assert pacing.redis_url() == "redis://elsewhere/1"
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "PACING_REDIS_URL": None, "EVENTS": None}
    assert pacing.redis_url() is None


@needs_redis
def test_redis_down_fails_open_with_a_warning(settings, own_redis, caplog):
    settings.PAGE_IMAGES = {
        **settings.PAGE_IMAGES,
        "RATE_LIMITS": {MODEL: {"requests_per_minute": 1}},
        "PACING_REDIS_URL": own_redis.url,
    }
    try:
        assert pacing.book(MODEL, 1, None).wait < 0.05
        own_redis.stop()
        with caplog.at_level(logging.WARNING, logger="page_images.pacing"):
            started = time.monotonic()
            assert pacing.book(MODEL, 1, None) is None
            pacing.pause(MODEL, 5)
        assert time.monotonic() - started < 2 * pacing.SOCKET_TIMEOUT + 1
        assert "pacing of openai/gpt-image-1 is off" in caplog.text
        assert "could not pause" in caplog.text
    finally:
        pacing.close()  # before the server's fixture stops it


# --- The job's side -----------------------------------------------------------------------------


def test_a_short_wait_is_slept_and_a_long_one_hands_the_job_back(monkeypatch):
    job = jobs.ImageJob(label="testapp.Page", pk="1", token=uuid.uuid4())
    slept = []
    monkeypatch.setattr(jobs.time, "sleep", slept.append)
    answers = iter(
        [None, pacing.Booking(0.0, 10.0), pacing.Booking(0.4, 10.0), pacing.Booking(5, 15.0)]
    )
    monkeypatch.setattr(pacing, "book", lambda *args: next(answers))
    jobs._wait_for_turn(MODEL, 1, job)  # unpaced
    jobs._wait_for_turn(MODEL, 1, job)  # its turn now
    jobs._wait_for_turn(MODEL, 1, job)
    assert slept == [0.4]
    with pytest.raises(jobs.Paced) as raised:
        jobs._wait_for_turn(MODEL, 1, job)
    assert (raised.value.wait, raised.value.slot) == (5, 15.0)


def test_a_job_with_no_turn_in_reach_fails_with_a_message(monkeypatch):
    job = jobs.ImageJob(label="testapp.Page", pk="1", token=uuid.uuid4())
    monkeypatch.setattr(pacing, "book", lambda *args: pacing.Booking(5000, 0, booked=False))
    with pytest.raises(GenerationError) as raised:
        jobs._wait_for_turn(MODEL, 1, job)
    assert raised.value.user_message == jobs.PACING_FULL_MESSAGE
    handed_back = job.model_copy(update={"paced": jobs.MAX_PACED})
    monkeypatch.setattr(pacing, "book", lambda *args: pacing.Booking(5, 10))
    with pytest.raises(GenerationError):
        jobs._wait_for_turn(MODEL, 1, handed_back)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "soon"}, None),
        ({"x-other": "1"}, None),
        ({}, None),
    ],
)
def test_retry_after_is_read_from_the_providers_answer(headers, seconds):
    assert retry_after(SimpleNamespace(litellm_response_headers=headers)) == seconds
    response = SimpleNamespace(headers=headers)
    assert retry_after(SimpleNamespace(litellm_response_headers=None, response=response)) == (
        seconds
    )


def test_retry_after_as_an_http_date():
    from datetime import datetime, timedelta, timezone
    from email.utils import format_datetime

    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 25 < retry_after(SimpleNamespace(litellm_response_headers={"retry-after": when})) <= 30
    assert retry_after(ValueError("no headers")) is None


# --- A real worker against the fake provider enforcing its limit ------------------------------


def _limited_settings(settings, litellm_settings, provider, limit, window):
    provider.rate_limit = (limit, window)
    settings.PAGE_IMAGES = {
        **settings.PAGE_IMAGES,
        "RATE_LIMITS": {MODEL: {"requests_per_minute": limit, "window": window}},
        "PACING_REDIS_URL": redis_url(),
        "MAX_RETRIES": 0,
    }
    client = redis.Redis.from_url(redis_url())
    try:
        client.delete(*pacing._keys(MODEL))
    finally:
        client.close()


@pytest.mark.django_db(transaction=True)
@real_worker_only
def test_a_burst_of_jobs_provokes_no_429(worker, make_page, provider, litellm_settings, settings):
    from page_images.queueing import request_generations

    _limited_settings(settings, litellm_settings, provider, limit=4, window=1.0)
    pages = [make_page(f"A lighthouse in a storm, number {n}") for n in range(12)]
    started = time.monotonic()
    request_generations(pages)
    for page in pages:
        wait_for(settled(page), timeout=30)
        assert_picture(page)
    elapsed = time.monotonic() - started
    assert provider.rate_limited == 0
    assert provider.generation_calls == 12
    # 12 calls at 4 a second, evenly spaced: about three seconds, not all at once.
    assert elapsed > 2.0


@pytest.mark.django_db(transaction=True)
@real_worker_only
def test_without_pacing_the_same_burst_is_refused(
    worker, make_page, provider, litellm_settings, settings
):
    from page_images.queueing import request_generations

    _limited_settings(settings, litellm_settings, provider, limit=4, window=1.0)
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "RATE_LIMITS": {}}
    pages = [make_page(f"A lighthouse in a storm, number {n}") for n in range(12)]
    # One job first: LiteLLM (1.110) builds its OpenAI client on a cache miss without a lock, so
    # four threads starting at once build four and keep one; the three others' sockets are left
    # to the garbage collector, which the suite's warnings-as-errors reports as a failure.
    request_generations(pages[:1])
    wait_for(settled(pages[0]), timeout=30)
    request_generations(pages[1:])
    for page in pages:
        wait_for(settled(page), timeout=30)
    assert provider.rate_limited > 0  # the test above could fail


@pytest.mark.django_db(transaction=True)
@real_worker_only
def test_retry_after_pauses_the_model_for_every_job(
    worker, make_page, provider, litellm_settings, settings
):
    from page_images.queueing import request_generations

    # The budget allows far more than the provider: only the 429's Retry-After holds the jobs.
    _limited_settings(settings, litellm_settings, provider, limit=1, window=3.0)
    settings.PAGE_IMAGES = {
        **settings.PAGE_IMAGES,
        "RATE_LIMITS": {MODEL: {"requests_per_minute": 1000}},
        "MAX_RETRIES": 3,
    }
    first, second = make_page("A windmill"), make_page("A watermill")
    request_generations([first])
    wait_for(settled(first), timeout=15)
    request_generations([second])  # refused 429, Retry-After 3: the model pauses
    wait_for(lambda: provider.rate_limited == 1, timeout=10)
    third = make_page("A sawmill")
    request_generations([third])
    for page in (second, third):
        wait_for(settled(page), timeout=30)
        assert_picture(page)
    # Without the shared pause the second job's retries (50 to 100 ms of back-off) would all
    # have been refused inside the provider's three seconds, and it would have given up.
    assert provider.rate_limited <= 2


# --- The job handing itself back, on either runner's Attempt ----------------------------------


class RecordingAttempt:
    """An Attempt that records what the job asked of its runner (fails when told to)."""

    time_limit = TimeoutError

    def __init__(self, retries=0, broken=False):
        self.retries = retries
        self.broken = broken
        self.asked = []

    def retry(self, error, countdown, job=None):
        if self.broken:
            raise ConnectionError("the broker is gone")
        self.asked.append((error, countdown, job))


@pytest.fixture
def scripted(settings):
    from tests.backends import ScriptedBackend

    settings.PAGE_IMAGES = {
        "BACKEND": "tests.backends.ScriptedBackend",
        "SIZE": "32x32",
        "MAX_RETRIES": 1,
        "RETRY_BACKOFF": 0.01,
        "RETRY_BACKOFF_MAX": 0.02,
    }
    ScriptedBackend.reset()
    return ScriptedBackend


def _job(page):
    from page_images import claims

    return jobs.ImageJob(label=page._meta.label, pk=str(page.pk), token=claims.claim(page))


@pytest.mark.django_db
def test_a_paced_job_goes_back_to_the_queue_without_using_a_retry(page, scripted, monkeypatch):
    monkeypatch.setattr(pacing, "book", lambda *args: pacing.Booking(5.0, 1234.5))
    job = _job(page)
    attempt = RecordingAttempt(retries=3)
    jobs.run(job.model_copy(update={"paced": 3}), attempt)
    [(_error, countdown, later)] = attempt.asked
    assert countdown == pytest.approx(5.0 - jobs.EARLY)
    assert (later.slot, later.paced, later.token) == (1234.5, 4, job.token)
    assert scripted.calls == []
    page.refresh_from_db()
    # Waiting for its turn, the record shows as queued: claimed, not started.
    assert page.image_generating
    assert page.image_started_at is None
    # Three hand-backs and no retry: a transient error is still retried (MAX_RETRIES = 1).
    monkeypatch.setattr(pacing, "book", lambda *args: None)
    scripted.reset(TransientGenerationError("busy"))
    attempt = RecordingAttempt(retries=3)
    jobs.run(later.model_copy(update={"paced": 3}), attempt)
    assert len(attempt.asked) == 1
    assert attempt.asked[0][2] is None


@pytest.mark.django_db
def test_a_paced_job_that_cannot_be_queued_again_fails_readably(page, scripted, monkeypatch):
    monkeypatch.setattr(pacing, "book", lambda *args: pacing.Booking(5.0, 1234.5))
    jobs.run(_job(page), RecordingAttempt(broken=True))
    page.refresh_from_db()
    assert page.image_state == "error"
    assert page.image_error == TransientGenerationError.default_message


@pytest.mark.django_db
def test_retry_after_pauses_the_model_and_delays_the_retry(page, scripted, monkeypatch):
    paused = []
    monkeypatch.setattr(pacing, "pause", lambda model, seconds: paused.append(seconds))
    scripted.reset(TransientGenerationError("slow down", retry_after=7.0))
    attempt = RecordingAttempt()
    jobs.run(_job(page), attempt)
    assert paused == [7.0]
    assert attempt.asked[0][1] == 7.0


def test_both_runners_queue_the_handed_back_payload(monkeypatch):
    from page_images import tasks, tasks_framework

    job = jobs.ImageJob(label="testapp.Page", pk="1", token=uuid.uuid4(), slot=9.5, paced=1)
    sent = []
    monkeypatch.setattr(tasks_framework, "enqueue", lambda job, **kw: sent.append((job, kw)))
    tasks_framework.FrameworkAttempt(job.model_copy(update={"paced": 0}), 2).retry(
        TransientGenerationError(), 4.0, job
    )
    assert sent == [(job, {"retries": 3, "countdown": 4.0})]

    class Task:
        request = SimpleNamespace(retries=2)

        def retry(self, **options):
            sent.append(options)
            return tasks.Retry()

    attempt = tasks.CeleryAttempt(Task())
    attempt.retry(TransientGenerationError(), 4.0, job)
    assert sent[-1]["args"] == (job.model_dump(mode="json", exclude_defaults=True),)
    assert sent[-1]["max_retries"] is None
    assert attempt.scheduled is not None
