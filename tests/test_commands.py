from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from page_images import claims
from tests.testapp.models import Page


@pytest.mark.django_db(transaction=True)
def test_release_stale_reports_what_it_released(page):
    claims.claim(page)
    Page.objects.filter(pk=page.pk).update(image_started_at=timezone.now() - timedelta(days=1))
    out = StringIO()
    call_command("page_images_release_stale", stdout=out)
    assert out.getvalue().strip() == "Released 1 stale image claim."
    page.refresh_from_db()
    assert page.image_state == "error"


# page_images_backfill: every record without a picture, a bounded number of jobs at a time.

from decimal import Decimal  # noqa: E402
from typing import Any  # noqa: E402

from django.core.management.base import CommandError  # noqa: E402

from page_images import tasks  # noqa: E402
from page_images.history import Generation  # noqa: E402
from page_images.management.commands import page_images_backfill  # noqa: E402
from tests.support.jobs import celery_app, with_picture  # noqa: E402


@pytest.fixture
def eager() -> Any:
    with celery_app("memory://", task_always_eager=True) as app:
        yield app


@pytest.fixture
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(page_images_backfill.Command, "poll_interval", 0.01)


def backfill(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("page_images_backfill", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def run_published(published: list[dict[str, Any]]) -> None:
    """Run the jobs a non-eager run sent to the broker, as a worker would, and forget them."""
    while published:
        message = published.pop(0)
        tasks.generate_image.apply(args=message["body"][0])


@pytest.mark.django_db(transaction=True)
def test_backfill_generates_every_record_without_a_picture_and_sums_up(make_page, eager):
    pages = [make_page(f"page {n}") for n in range(4)]
    pictured = with_picture(make_page("has one"))
    blank = make_page("  ")
    out, _err = backfill("testapp.Page")
    assert "Queued 4: done 4, failed 0." in out
    assert "Skipped 2: 1 had a picture or a job running, 1 had no text" in out
    assert "Cost: $0.00." in out  # the LocalBackend costs nothing
    for page in pages:
        page.refresh_from_db()
        assert page.image_state == "ready"
    assert Generation.objects.count() == 4
    assert not Generation.objects.of(pictured).exists()
    assert "still have no picture" in out  # the blank one
    blank.refresh_from_db()
    assert not blank.image_generating


@pytest.mark.django_db(transaction=True)
def test_backfill_dry_run_counts_and_prices_without_queueing(make_page, published, settings):
    for n in range(3):
        make_page(f"page {n}")
    with_picture(make_page("has one"))
    make_page("")
    out, _err = backfill("testapp.Page", "--dry-run")
    assert "would queue 3 of 5 pages (1 have a picture or a job running, 1 have no text)" in out
    assert "Estimated cost: $0.00" in out  # the LocalBackend costs nothing
    settings.PAGE_IMAGES = {
        **settings.PAGE_IMAGES,
        "BACKEND": "tests.backends.ScriptedBackend",
        "OPTIONS": {"model": "openai/gpt-image-1"},
        "PRICES": {"openai/gpt-image-1": {"256x256": "0.011"}},
    }
    out, _err = backfill("testapp.Page", "--dry-run", "--limit", "2")
    assert "would queue 2 of 5" in out
    assert "Estimated cost: $0.02 (2 at $0.0110)." in out
    assert published == []
    assert not Generation.objects.exists()
    assert not Page.objects.filter(image_generating=True).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.django_db(transaction=True)
def test_backfill_dry_run_says_when_the_table_has_no_price(page, settings):
    settings.PAGE_IMAGES = {
        **settings.PAGE_IMAGES,
        "BACKEND": "tests.backends.ScriptedBackend",
        "OPTIONS": {"model": "a-model-nobody-priced"},
    }
    out, _err = backfill("testapp.Page", "--dry-run")
    assert "would queue 1 of 1" in out
    assert "Estimated cost: cost unknown (no price for this model and size)." in out


def test_backfill_dry_run_with_nothing_to_do_prices_nothing(page):
    with_picture(page)
    out, _err = backfill("testapp.Page", "--dry-run")
    assert "would queue 0 of 1" in out
    assert "cost" not in out.lower().replace("cost unknown", "")


@pytest.mark.parametrize(
    ("prices", "expected"),
    [
        ({}, None),
        ({"m": "0.04"}, Decimal("0.08")),  # one price per picture, whatever the size
        ({"m": {"1024x1024": 0.04}}, Decimal("0.08")),
        ({"m": {"512x512": 0.04}}, None),
        ({"m": {"1024x1024": {"high": "0.17"}}}, Decimal("0.34")),
        ({"m": {"1024x1024": {"low": "0.17"}}}, None),
    ],
)
def test_estimate_cost_reads_the_price_table(settings, prices, expected):
    settings.PAGE_IMAGES = {"BACKEND": "tests.backends.ScriptedBackend", "PRICES": prices}
    assert page_images_backfill.estimate_cost("m", "1024x1024", "high", 2) == expected


@pytest.mark.django_db(transaction=True)
def test_backfill_limit_and_filter_choose_the_records(make_page, story, eager):
    from tests.testapp.models import Story

    other = Story.objects.create(title="The hen")
    foxes = [make_page(f"fox {n}") for n in range(3)]
    hen = Page.objects.create(story=other, image_text="hen")
    out, _err = backfill("testapp.Page", "--filter", f"story={story.pk}", "--limit", "2")
    assert "Queued 2: done 2, failed 0." in out
    assert "1 record(s) still have no picture" in out
    states = [Page.objects.get(pk=p.pk).image_state for p in foxes]
    assert states == ["ready", "ready", "empty"]  # in the order of their keys
    assert Page.objects.get(pk=hen.pk).image_state == "empty"
    out, _err = backfill(
        "testapp.Page", "--filter", "story__title__icontains=HEN", "--filter", f"id__in={hen.pk},0"
    )
    assert "Queued 1: done 1" in out
    out, _err = backfill("testapp.Page", "--filter", "image_text__isnull=false")
    assert "Queued 1: done 1" in out  # the last fox
    assert not Page.objects.exclude(image="").filter(image_generating=True).exists()


@pytest.mark.django_db(transaction=True)
def test_backfill_keeps_at_most_max_in_flight_jobs_queued(make_page, published, monkeypatch):
    """No worker here: the jobs wait in the broker until the test runs them, two at a time."""
    for n in range(5):
        make_page(f"page {n}")
    peaks: list[int] = []

    def worker_runs_the_queue(seconds: float) -> None:
        peaks.append(Page.objects.filter(image_generating=True).count())
        run_published(published)

    monkeypatch.setattr(page_images_backfill.time, "sleep", worker_runs_the_queue)
    out, err = backfill("testapp.Page", "--max-in-flight", "2")
    assert peaks == [2, 2, 1]
    assert "Queued 5: done 5, failed 0." in out
    # Not a terminal: one progress line per wait.
    assert err.splitlines() == [
        "queued 2/5, in flight 2, done 0, failed 0",
        "queued 4/5, in flight 2, done 2, failed 0",
        "queued 5/5, in flight 1, done 4, failed 0",
    ]


@pytest.mark.django_db(transaction=True)
def test_backfill_progress_updates_one_line_on_a_terminal(make_page, published, monkeypatch):
    make_page("one")

    class Terminal(StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(
        page_images_backfill.time, "sleep", lambda seconds: run_published(published)
    )
    out, err = StringIO(), Terminal()
    call_command("page_images_backfill", "testapp.Page", "--limit", "1", stdout=out, stderr=err)
    assert err.getvalue() == "\r" + "queued 1/1, in flight 1, done 0, failed 0".ljust(79) + "\n"
    assert "Queued 1: done 1" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_backfill_interrupted_and_run_again_loses_no_job_and_does_none_twice(
    make_page, published, monkeypatch
):
    pages = [make_page(f"page {n}") for n in range(6)]

    def ctrl_c(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(page_images_backfill.time, "sleep", ctrl_c)
    out = StringIO()
    with pytest.raises(CommandError, match="Interrupted: 2 queued jobs will still run") as caught:
        call_command("page_images_backfill", "testapp.Page", "--max-in-flight", "2", stdout=out)
    assert caught.value.returncode == 130
    assert "Queued 2: done 0, failed 0, still running 2." in out.getvalue()
    assert len(published) == 2  # left in the broker for the workers
    first_jobs = list(published)
    # Run again while those two still wait: they are skipped, the other four are queued.
    monkeypatch.setattr(page_images_backfill.time, "sleep", lambda s: run_published(published))
    published.clear()
    out2, _err = backfill("testapp.Page", "--max-in-flight", "10")
    assert "Skipped 2: 2 had a picture or a job running" in out2
    assert "Queued 4: done 4, failed 0." in out2
    # The workers get to the first run's jobs only now.
    published.extend(first_jobs)
    run_published(published)
    for page in pages:
        page.refresh_from_db()
        assert page.image_state == "ready"
        assert [g.status for g in Generation.objects.of(page)] == ["done"]
    out3, _err = backfill("testapp.Page")
    assert "Queued 0" in out3
    assert "Skipped 6" in out3


@pytest.mark.django_db(transaction=True)
def test_ctrl_c_while_a_batch_is_queued_waits_for_its_jobs_to_be_sent(make_page, published):
    import signal

    pages = [make_page(f"page {n}") for n in range(3)]
    original = page_images_backfill.request_generations

    def interrupted(records: Any, **kwargs: Any) -> Any:
        signal.raise_signal(signal.SIGINT)  # Ctrl-C between claim and send: held back
        return original(records, **kwargs)

    page_images_backfill.request_generations = interrupted  # type: ignore[assignment]
    try:
        with pytest.raises(CommandError, match="Interrupted") as caught:
            backfill("testapp.Page")
    finally:
        page_images_backfill.request_generations = original  # type: ignore[assignment]
    assert caught.value.returncode == 130
    assert len(published) == 3  # every claimed record has its job
    assert Page.objects.filter(image_generating=True).count() == len(pages)


def test_ctrl_c_outside_the_main_thread_is_not_held_back():
    import threading

    ran: list[bool] = []

    def run() -> None:
        with page_images_backfill._deferred_interrupt():
            ran.append(True)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert ran == [True]


@pytest.mark.django_db(transaction=True)
def test_backfill_exits_1_when_a_job_failed(make_page, eager, settings):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "OPTIONS": {"refuse_words": ["forbidden"]}}
    make_page("a fox")
    make_page("a forbidden fox")
    out = StringIO()
    with pytest.raises(CommandError, match="1 generation failed") as caught:
        call_command("page_images_backfill", "testapp.Page", stdout=out)
    assert caught.value.returncode == 1
    assert "Queued 2: done 1, failed 1." in out.getvalue()
    assert "1 record(s) still have no picture" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_a_job_presumed_dead_counts_as_failed(make_page, published, monkeypatch):
    page = make_page("lost")

    def the_worker_died(seconds: float) -> None:
        Page.objects.filter(pk=page.pk).update(image_claimed_at=timezone.now() - timedelta(days=2))

    monkeypatch.setattr(page_images_backfill.time, "sleep", the_worker_died)
    with pytest.raises(CommandError, match="1 generation failed"):
        backfill("testapp.Page")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("second", "summary"),
    [
        (None, "Cost: $0.04 known; 1 generation(s) have no price (cost unknown)."),
        (Decimal("0.05"), "Cost: $0.09."),
    ],
)
def test_backfill_cost_sums_the_runs_history(make_page, eager, monkeypatch, second, summary):
    from page_images import history

    make_page("one")
    make_page("two")
    priced = iter([Decimal("0.04"), second])
    original = history.record_outcome

    def with_cost(*args: Any, **fields: Any) -> int:
        return original(*args, **{**fields, "cost": next(priced)})

    monkeypatch.setattr(history, "record_outcome", with_cost)
    out, _err = backfill("testapp.Page")
    assert summary in out


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["testapp.Note"], "not a model that uses ImageGeneratingMixin; these do: .*testapp.Page"),
        (["testapp.Nothing"], "not a model that uses"),
        (["nonsense"], "not a model that uses"),
        (["testapp.Page", "--limit", "0"], "--limit must be at least 1"),
        (["testapp.Page", "--max-in-flight", "0"], "--max-in-flight must be at least 1"),
        (["testapp.Page", "--filter", "story"], "write it as field=value"),
        (["testapp.Page", "--filter", "=1"], "write it as field=value"),
        (["testapp.Page", "--filter", "nope=1"], "--filter: Cannot resolve keyword"),
        (["testapp.Page", "--filter", "id=x"], "--filter:"),
        (["testapp.Page", "--filter", "image__isnull=maybe"], "__isnull takes true or false"),
        (["testapp.Page", "--preset", "nope"], "not offered"),
        (["testapp.Page", "--preset", "nope", "--dry-run"], "not offered"),
    ],
)
def test_backfill_refuses_what_it_cannot_do(page, args, message):
    with pytest.raises(CommandError, match=message):
        backfill(*args)


@pytest.mark.django_db(transaction=True)
def test_backfill_speaks_the_active_language_to_the_operator(make_page, eager, settings):
    """On a German site (LANGUAGE_CODE, or a language a wrapper activates) the summary, the
    error, the progress line and the refusals of bad arguments are German."""
    from django.utils import translation

    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "OPTIONS": {"refuse_words": ["forbidden"]}}
    make_page("a fox")
    make_page("a forbidden fox")
    out, err = StringIO(), StringIO()
    with translation.override("de"), pytest.raises(CommandError) as caught:
        call_command("page_images_backfill", "testapp.Page", stdout=out, stderr=err)
    assert str(caught.value) == "1 Generierung ist fehlgeschlagen: siehe Zusammenfassung."
    assert caught.value.returncode == 1
    assert out.getvalue().splitlines() == [
        "Eingereiht 2: fertig 1, fehlgeschlagen 1.",
        "Übersprungen 0: 0 hatten ein Bild oder einen laufenden Job, 0 hatten keinen Text oder "
        "wurden inzwischen anderweitig übernommen.",
        "Kosten: $0.00 bekannt; 1 Generierung hat keinen Preis (Kosten unbekannt).",
        "1 Datensatz hat noch kein Bild: den Befehl erneut ausführen.",
    ]
    with translation.override("de"), pytest.raises(CommandError) as caught:
        backfill("testapp.Page", "--limit", "0")
    assert str(caught.value) == "--limit muss mindestens 1 sein"
    with translation.override("de"):
        out_text, _err = backfill("testapp.Page", "--dry-run")
    assert out_text.startswith("Probelauf: würde 1 von 2 ")


@pytest.mark.django_db(transaction=True)
def test_the_progress_line_and_an_interruption_speak_the_active_language(
    make_page, published, monkeypatch
):
    from django.utils import translation

    for n in range(3):
        make_page(f"page {n}")
    waits: list[float] = []

    def ctrl_c_at_the_second_wait(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            raise KeyboardInterrupt
        run_published(published[:1])
        del published[:1]

    monkeypatch.setattr(page_images_backfill.time, "sleep", ctrl_c_at_the_second_wait)
    out, err = StringIO(), StringIO()
    with translation.override("de"), pytest.raises(CommandError) as caught:
        call_command(
            "page_images_backfill", "testapp.Page", "--max-in-flight", "2", stdout=out, stderr=err
        )
    assert err.getvalue().splitlines()[0] == (
        "eingereiht 2/3, in Arbeit 2, fertig 0, fehlgeschlagen 0"
    )
    assert str(caught.value) == (
        "Unterbrochen: 2 Jobs in der Warteschlange laufen trotzdem noch. Zum Fortsetzen den "
        "Befehl erneut ausführen."
    )
    assert out.getvalue().startswith("Eingereiht 3: fertig 1, fehlgeschlagen 0, laufen noch 2.")
