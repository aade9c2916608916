"""Quotas per user and for the site: counted from the history, enforced by the click, shown low.

The clock is passed in (``now=``): the calendar day and month are the site's TIME_ZONE's.
"""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.db import connection, transaction
from django.test import RequestFactory, override_settings

from page_images import queueing, quotas
from page_images.checks import check_settings
from page_images.exceptions import QuotaExceededError
from page_images.history import Generation
from page_images.rendering import container_context
from tests.support.web import client_for, post
from tests.testapp.models import Page

UTC = timezone.utc
#: 22:30 UTC on 31 March: still 31 March in UTC, already 1 April (a new month) in Paris.
NOW = datetime(2026, 3, 31, 22, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()


def made(user, page, *, when=NOW, status="done", variants=1, cost=None, estimated=None, **more):
    """A history row as a click and its job would have left it."""
    row = Generation.objects.create(
        content_type=ContentType.objects.get_for_model(Page),
        object_id=str(page.pk),
        token=uuid.uuid4(),
        user=user,
        prompt="p",
        status=status,
        variants=variants,
        cost=None if cost is None else Decimal(cost),
        estimated_cost=None if estimated is None else Decimal(estimated),
        **more,
    )
    Generation.objects.filter(pk=row.pk).update(created_at=when)
    return row


def use_quotas(settings, quota, **more):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "QUOTAS": quota, **more}


@pytest.fixture
def other(django_user_model):
    return django_user_model.objects.create_user("other", password="pw")


def test_without_quotas_nothing_is_counted(editor, django_assert_num_queries):
    with django_assert_num_queries(0):
        status = quotas.remaining(editor)
        assert quotas.enforce(editor, 100) == status
    assert not status
    assert status.binding is None
    assert status.remaining is None
    assert status.message == ""
    assert not status.low


def test_per_user_count_per_day(settings, editor, other, page):
    use_quotas(settings, {"per_user": {"day": 20}})
    made(editor, page, variants=3)  # three candidates count as three pictures
    for _ in range(14):
        made(editor, page)
    made(editor, page, status="review")
    made(editor, page, status="failed")  # refused by the provider: not paid, not counted
    made(editor, page, status="cancelled")  # cancelled while queued
    made(editor, page, status="cancelled", cost="0.04")  # candidates discarded: paid for
    made(other, page, variants=5)  # someone else's
    made(editor, page, when=NOW - timedelta(days=1), variants=10)  # yesterday's
    status = quotas.remaining(editor, now=NOW)
    assert status.remaining == 1
    assert status.message == "1 of 20 images left today"
    assert status.low
    assert quotas.enforce(editor, now=NOW).remaining == 1
    with pytest.raises(QuotaExceededError) as caught:
        quotas.enforce(editor, 3, now=NOW)
    assert caught.value.user_message == ("Only 1 of today's images are left, and this asks for 3.")
    assert caught.value.status.remaining == 1
    made(editor, page)
    with pytest.raises(
        QuotaExceededError, match=r"You have used today's 20 images\. More tomorrow"
    ):
        quotas.enforce(editor, now=NOW)
    assert quotas.remaining(editor, now=NOW + timedelta(hours=2)).message == (
        "20 of 20 images left today"
    )


@override_settings(TIME_ZONE="Europe/Paris")
def test_the_day_and_month_are_the_sites_calendar(settings, editor, page):
    use_quotas(settings, {"per_user": {"day": 5, "month": 10}})
    made(editor, page, when=NOW - timedelta(hours=2))  # 22:30 on 31 March in Paris
    made(editor, page, when=NOW - timedelta(minutes=10))  # 00:20 on 1 April in Paris
    day, month = quotas.period_starts(NOW)
    assert day == month == datetime(2026, 3, 31, 22, 0, tzinfo=UTC)
    status = quotas.remaining(editor, now=NOW)
    assert [(limit.period, limit.used) for limit in status.limits] == [("day", 1), ("month", 1)]
    with override_settings(TIME_ZONE="UTC"):  # the same rows, a site in London
        status = quotas.remaining(editor, now=NOW)
    assert [(limit.period, limit.used) for limit in status.limits] == [("day", 2), ("month", 2)]


@override_settings(USE_TZ=False)
def test_the_calendar_without_time_zones():
    day, month = quotas.period_starts(datetime(2026, 3, 31, 22, 30))
    assert (day, month) == (datetime(2026, 3, 31), datetime(2026, 3, 1))


def test_money_counts_cost_then_the_providers_figure_then_the_estimate(settings, editor, page):
    use_quotas(
        settings,
        {"per_user": {"month_usd": "1.00"}},
        BACKEND="page_images.backends.litellm.LiteLLMBackend",
        OPTIONS={"model": "openai/gpt-image-1"},
        SIZE="1024x1024",
        QUALITY="low",
    )
    made(editor, page, cost="0.50")
    made(editor, page, status="running", estimated="0.30")  # not finished: its estimate
    made(editor, page, status="queued")  # no estimate (an unpriced model): nothing
    made(editor, page, provider_cost=Decimal("0.10"))  # our table had no price
    made(editor, page, status="failed", estimated="0.25")  # refused, never charged
    made(editor, page, when=NOW - timedelta(days=31), cost="5.00")  # last month
    status = quotas.remaining(editor, now=NOW)
    assert status.remaining == Decimal("0.10")
    assert status.message == "$0.10 of $1.00 left this month"
    quotas.enforce(editor, now=NOW)  # 0.011 at low quality, 1024x1024
    with pytest.raises(QuotaExceededError) as caught:
        quotas.enforce(editor, 1, Decimal("0.167"), now=NOW)
    assert caught.value.user_message == (
        "This would cost more than the $0.10 left of this month's image budget."
    )
    made(editor, page, cost="0.10")
    with pytest.raises(QuotaExceededError, match="You have spent this month's image budget"):
        quotas.enforce(editor, now=NOW)


def test_an_unpriced_model_costs_nothing_to_a_budget(settings, editor, page):
    use_quotas(
        settings,
        {"per_user": {"day_usd": "1"}},
        BACKEND="page_images.backends.litellm.LiteLLMBackend",
        OPTIONS={"model": "imagen-4"},
    )
    made(editor, page, cost="0.99")
    assert quotas.enforce(editor, 50, now=NOW).remaining == Decimal("0.01")


def test_the_site_counts_everyone_and_speaks_first(settings, editor, other, page):
    use_quotas(settings, {"per_user": {"day": 20}, "site": {"month": 10}})
    for _ in range(8):
        made(other, page)
    made(None, page)  # a backfill's
    status = quotas.remaining(editor, now=NOW)
    assert status.binding.scope == "site"
    assert status.message == "1 of this site's 10 images left this month"
    made(editor, page)
    with pytest.raises(QuotaExceededError) as caught:
        quotas.enforce(editor, now=NOW)
    assert caught.value.user_message == (
        "This site's 10 images for this month are used up. Ask an administrator."
    )
    # Without a signed-in user only the site's quota applies.
    assert [limit.scope for limit in quotas.remaining(AnonymousUser(), now=NOW).limits] == ["site"]
    use_quotas(settings, {"per_user": {"day": 20}})
    assert not quotas.remaining(None)


@pytest.mark.parametrize(
    ("quota", "left", "refused"),
    [
        ({"per_user": {"day": 1}}, "0 of 1 image left today", "You have used today's 1 images."),
        (
            {"per_user": {"month": 1}},
            "0 of 1 image left this month",
            "You have used this month's 1 images. More next month.",
        ),
        (
            {"per_user": {"day_usd": "0.04"}},
            "$0.00 of $0.04 left today",
            "You have spent today's image budget. More tomorrow.",
        ),
        (
            {"site": {"day": 1}},
            "0 of this site's 1 image left today",
            "This site's 1 images for today are used up. More tomorrow.",
        ),
        (
            {"site": {"day_usd": "0.04"}},
            "$0.00 of this site's $0.04 left today",
            "This site's image budget for today is spent. More tomorrow.",
        ),
        (
            {"site": {"month_usd": "0.04"}},
            "$0.00 of this site's $0.04 left this month",
            "This site's monthly image budget is spent. Ask an administrator.",
        ),
        ({"site": {"month": 2}}, "1 of this site's 2 images left this month", None),
        ({"per_user": {"day": 2}}, "1 of 2 images left today", None),
        ({"per_user": {"day_usd": "1"}}, "$0.96 of $1.00 left today", None),
    ],
)
def test_every_sentence(settings, editor, page, quota, left, refused):
    use_quotas(settings, quota)
    made(editor, page, cost="0.04")
    status = quotas.remaining(editor, now=NOW)
    assert status.message == left
    if refused is None:
        quotas.enforce(editor, now=NOW)
    else:
        with pytest.raises(QuotaExceededError, match=refused.replace(".", r"\.")):
            quotas.enforce(editor, now=NOW)


def test_a_short_day_budget(settings, editor, page):
    use_quotas(settings, {"per_user": {"day_usd": "0.10"}})
    made(editor, page, cost="0.05")
    with pytest.raises(QuotaExceededError, match=r"more than the \$0\.05 left of today's"):
        quotas.enforce(editor, 1, Decimal("0.06"), now=NOW)


def test_a_short_month(settings, editor, page):
    use_quotas(settings, {"per_user": {"month": 3}})
    made(editor, page)
    with pytest.raises(QuotaExceededError, match="Only 2 of this month's images are left"):
        quotas.enforce(editor, 3, now=NOW)


def test_an_admin_action_checks_its_whole_selection(settings, editor, page):
    use_quotas(
        settings,
        {"per_user": {"day": 10, "day_usd": "1.00"}},
        BACKEND="page_images.backends.litellm.LiteLLMBackend",
        OPTIONS={"model": "openai/gpt-image-1"},
        SIZE="1024x1024",
        QUALITY="medium",
        VARIANTS=2,
        PRESETS={"cheap": {"quality": "low"}},
    )
    made(editor, page, variants=2, cost="0.084")
    assert quotas.enforce_generations(editor, 4, now=NOW).remaining == 8  # 8 of 10 pictures
    with pytest.raises(QuotaExceededError, match="Only 8 of today's images are left"):
        quotas.enforce_generations(editor, 5, now=NOW)
    settings.PAGE_IMAGES["QUOTAS"] = {"per_user": {"day_usd": "1.00"}}
    with pytest.raises(QuotaExceededError, match=r"more than the \$0\.92 left"):
        quotas.enforce_generations(editor, 11, now=NOW)  # 22 pictures, $0.924
    quotas.enforce_generations(editor, 41, preset="cheap", now=NOW)  # 82 low ones: $0.902


def test_one_query_per_check_and_a_lock_inside_the_transaction(
    settings, editor, page, django_assert_num_queries
):
    use_quotas(settings, {"per_user": {"day": 20, "month_usd": "5"}, "site": {"month": 100}})
    with django_assert_num_queries(1):
        quotas.remaining(editor, now=NOW)
    with transaction.atomic(), django_assert_num_queries(2) as context:
        quotas.enforce(editor, lock=True, now=NOW)
    assert "django_content_type" in context.captured_queries[0]["sql"]  # the site's lock
    use_quotas(settings, {"per_user": {"day": 20}})
    with transaction.atomic(), django_assert_num_queries(2) as context:
        quotas.enforce(editor, lock=True, now=NOW)
    assert "auth_user" in context.captured_queries[0]["sql"]  # the user's own row
    assert '"user_id" =' in context.captured_queries[1]["sql"]  # on the (user, created_at) index


def test_the_status_is_counted_once_per_request(settings, editor, django_assert_num_queries):
    use_quotas(settings, {"per_user": {"day": 20}})
    request = RequestFactory().get("/")
    with django_assert_num_queries(1):
        first = quotas.display_status(request, editor)
        assert quotas.display_status(request, editor) is first
    assert quotas.display_status(None, AnonymousUser()) == quotas.QuotaStatus()
    assert quotas.display_status(None, editor).message == "20 of 20 images left today"


# The click.


def test_the_click_past_a_quota_is_429_with_the_sentence_and_queues_nothing(
    settings, editor, make_page, published
):
    use_quotas(settings, {"per_user": {"day": 1}})
    made(editor, make_page("earlier"), when=datetime.now(UTC))
    page = make_page()
    response = post(client_for(editor), page)
    assert response.status_code == 429
    html = response.content.decode()
    assert "You have used today&#x27;s 1 images. More tomorrow." in html
    assert 'class="page-images' in html  # the container, in the chip's place
    assert published == []
    page.refresh_from_db()
    assert page.image_state == "empty"
    assert Generation.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_queued_clicks_count_at_once_and_at_their_estimate(settings, editor, make_page, published):
    use_quotas(
        settings,
        {"per_user": {"month_usd": "0.30"}},
        BACKEND="page_images.backends.litellm.LiteLLMBackend",
        OPTIONS={"model": "openai/gpt-image-1"},
        SIZE="1024x1024",
        QUALITY="high",
    )
    client = client_for(editor)
    codes = [post(client, make_page(f"text {i}")).status_code for i in range(3)]
    assert codes == [200, 429, 429]  # 0.167 queued; a second would make 0.334
    assert len(published) == 1
    (row,) = Generation.objects.all()
    assert row.estimated_cost == Decimal("0.167")
    assert row.cost is None


def test_a_chip_shows_the_quota_once_it_runs_low(settings, editor, make_page, rf):
    use_quotas(settings, {"per_user": {"day": 5}})
    request = rf.get("/")
    request.user = editor
    page = make_page()

    def html():
        from django.template.loader import render_to_string

        request.__dict__.pop("_page_images_quota", None)
        return render_to_string(
            "page_images/container.html", container_context(request, page), request
        )

    for _ in range(3):
        made(editor, make_page("done"), when=datetime.now(UTC))
    assert "page-images-quota" not in html()  # 2 of 5 left: 40 %
    made(editor, make_page("done"), when=datetime.now(UTC))
    assert '<p class="page-images-quota">1 of 5 images left today</p>' in html()
    settings.PAGE_IMAGES = {}
    assert container_context(request, page)["quota"] is None


# Two clicks at once.


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("scope", ["per_user", "site"])
def test_concurrent_clicks_cannot_share_the_last_picture(settings, editor, make_page, scope):
    """Threads, each on its own PostgreSQL connection, click different records at once."""
    assert connection.vendor == "postgresql"
    clicks = 8
    use_quotas(settings, {scope: {"day": 3}})
    for _ in range(2):
        made(editor, make_page("done"), when=datetime.now(UTC))
    pages = [make_page(f"text {i}") for i in range(clicks)]
    barrier = threading.Barrier(clicks)
    results: list[object] = []
    lock = threading.Lock()

    def click(page: Page) -> None:
        try:
            barrier.wait(timeout=30)
            outcome: object = queueing.request_generation(page, user=editor, enforce_quota=True)
        except Exception as exc:  # asserted below
            outcome = exc
        finally:
            connection.close()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=click, args=(page,)) for page in pages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    refused = [r for r in results if isinstance(r, QuotaExceededError)]
    won = [r for r in results if isinstance(r, uuid.UUID)]
    assert len(results) == clicks
    assert (len(won), len(refused)) == (1, clicks - 1), results
    assert Generation.objects.filter(user=editor).count() == 3
    assert Page.objects.filter(image_generating=True).count() == 1


# System checks.


def ids(quota=None, **more):
    with override_settings(PAGE_IMAGES={"QUOTAS": quota, **more}):
        return sorted({message.id for message in check_settings() if not message.is_silenced()})


@pytest.mark.parametrize(
    ("quota", "expected"),
    [
        ({"per_user": {"day": 20, "month_usd": "10.00"}, "site": {"month": 2000}}, []),
        (None, []),
        (["day"], ["page_images.E070"]),
        ({"user": {"day": 1}}, ["page_images.E070"]),
        ({"site": 100}, ["page_images.E070"]),
        ({"site": {"week": 100}}, ["page_images.E071"]),
        ({"site": {"day": 0}}, ["page_images.E072"]),
        ({"site": {"day": "10"}}, ["page_images.E072"]),
        ({"site": {"day": True}}, ["page_images.E072"]),
        ({"site": {"day_usd": "ten"}}, ["page_images.E072"]),
        ({"site": {"day_usd": 0}}, ["page_images.E072"]),
        ({"site": {"day_usd": 2.5}}, []),
    ],
)
def test_checks(quota, expected):
    assert ids(quota) == expected


def test_a_price_table_that_is_not_one():
    assert ids(PRICES={"gpt-image-1": {"1024x1024": "cheap"}}) == ["page_images.E075"]
    assert ids(PRICES=["gpt-image-1"]) == ["page_images.E075"]


def test_a_budget_without_a_price_is_a_warning():
    litellm = {
        "BACKEND": "page_images.backends.litellm.LiteLLMBackend",
        "OPTIONS": {"model": "vertex_ai/imagen-4"},
    }
    with override_settings(
        PAGE_IMAGES={
            **litellm,
            "QUOTAS": {"site": {"month_usd": "100"}},
            "PRESETS": {"wide": {"size": "1536x1024"}, "odd": "not a preset"},
        }
    ):
        (warning,) = [m for m in check_settings() if not m.is_silenced()]
    assert warning.id == "page_images.W070"
    assert "'vertex_ai/imagen-4' (1024x1024 at quality auto; 1536x1024 at quality auto)" in (
        warning.msg
    )
    priced = {**litellm, "PRICES": {"imagen-4": "0.04"}}
    assert ids({"site": {"month_usd": "100"}}, **priced) == []
    assert ids({"site": {"month": 100}}, **litellm) == []  # counts need no price
    assert ids({"site": {"month_usd": "100"}}) == []  # the LocalBackend is free
