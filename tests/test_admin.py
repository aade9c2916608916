"""The admin: the live container in the change form, the state column and filter, the action that
generates for the selected records, and the read-only history (tests/testapp/admin.py)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib import admin as django_admin
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.test import RequestFactory
from django.utils import timezone

from page_images import admin, claims
from page_images.history import Generation
from tests.support.jobs import celery_app, with_picture
from tests.testapp.admin import PageAdmin
from tests.testapp.models import Page, Poster

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/testapp/page/"


@pytest.fixture
def staff(editor: Any) -> Any:
    """The editor, allowed into the admin and to view the history."""
    editor.is_staff = True
    editor.save()
    editor.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["add_page", "view_page", "view_generation", "view_poster"]
        )
    )
    return type(editor).objects.get(pk=editor.pk)


@pytest.fixture
def client(client: Any, staff: Any) -> Any:
    client.force_login(staff)
    return client


@pytest.fixture
def eager() -> Any:
    with celery_app("memory://", task_always_eager=True) as app:
        yield app


@pytest.fixture(autouse=True)
def _fresh_rate_limit() -> Any:
    cache.clear()
    yield
    cache.clear()


def every_state(make_page: Any) -> dict[str, Page]:
    """One page per state, and the edge cases of each: a lost claim with and without a picture."""
    long_ago = timezone.now() - timedelta(days=2)
    pages = {
        "empty": make_page("empty"),
        "ready": with_picture(make_page("ready")),
        "error": make_page("error", image_error="Refused."),
        "generating": make_page("generating"),
        "review": make_page("review", image_review=True),
        "lost": make_page("lost"),
        "lost-ready": with_picture(make_page("lost with picture")),
    }
    claims.claim(pages["generating"])
    for name in ("lost", "lost-ready"):
        claims.claim(pages[name])
        Page.objects.filter(pk=pages[name].pk).update(image_started_at=long_ago)
    return pages


def test_the_state_filter_agrees_with_image_state(make_page):
    every_state(make_page)
    by_state: dict[str, set[int]] = {}
    for page in Page.objects.all():
        by_state.setdefault(page.image_state, set()).add(page.pk)
    for state in admin.STATE_LABELS:
        found = set(
            Page.objects.filter(admin.image_state_q(Page, state)).values_list("pk", flat=True)
        )
        assert found == by_state.get(state, set()), state
    assert by_state.keys() == set(admin.STATE_LABELS)


def test_the_state_filter_reads_a_models_own_image_field(poster):
    assert not Poster.objects.filter(admin.image_state_q(Poster, "ready")).exists()
    with_picture(poster)  # into ``artwork``
    assert list(Poster.objects.filter(admin.image_state_q(Poster, "ready"))) == [poster]
    assert not Poster.objects.filter(admin.image_state_q(Poster, "empty")).exists()


def test_the_changelist_shows_thumbnail_and_state_and_filters_by_state(client, make_page):
    pages = every_state(make_page)
    answer = client.get(CHANGELIST)
    assert answer.status_code == 200
    html = answer.content.decode()
    assert 'class="page-images-admin-thumbnail"' in html
    assert pages["ready"].image_file.url in html
    assert "has a picture" in html
    assert "generating" in html
    assert "failed" in html
    assert "?image_state=review" in html  # the filter's choices
    answer = client.get(CHANGELIST, {"image_state": "error"})
    shown = {page.pk for page in answer.context["cl"].result_list}
    assert shown == {pages["error"].pk, pages["lost"].pk}
    # An unknown choice filters nothing (Django's own filters do the same).
    answer = client.get(CHANGELIST, {"image_state": "nonsense"})
    assert answer.context["cl"].result_count == len(pages)


def test_the_change_form_shows_the_live_container_after_the_image_field(client, page):
    answer = client.get(f"{CHANGELIST}{page.pk}/change/")
    assert answer.status_code == 200
    html = answer.content.decode()
    # The container, in a <template> the script right after it puts in place (no nested forms).
    template = html.index('<template class="page-images-admin-template">')
    assert html.index('name="image"') < template  # after the image field
    box = html.index('class="page-images page-images-empty"', template)
    assert html.index("</template>", box) < html.index("page_images/admin.js", box)
    assert 'name="ref"' in html
    assert "Generate image" in html
    assert 'name="csrfmiddlewaretoken"' in html[template:]
    # The stylesheets, and one stream script (htmx: test_htmx_comes_from_django_htmx...).
    assert html.count("page_images/page_images.js") == 1
    assert "page_images/admin.css" in html
    # Only the image field and the container are added: the bookkeeping stays hidden.
    assert "image_claim_token" not in html


def test_the_change_form_links_to_the_records_history(client, staff, make_page, eager):
    from page_images.queueing import request_generation

    page, other = make_page("one"), make_page("two")
    request_generation(page)
    request_generation(other)
    html = client.get(f"{CHANGELIST}{page.pk}/change/").content.decode()
    link = html.split('class="page-images-admin-history"><a href="', 1)[1].split('"', 1)[0]
    answer = client.get(link.replace("&amp;", "&"))
    assert answer.status_code == 200
    assert [row.object_id for row in answer.context["cl"].result_list] == [str(page.pk)]
    # Only for those who may read the history.
    staff.user_permissions.remove(*Permission.objects.filter(codename="view_generation"))
    html = client.get(f"{CHANGELIST}{page.pk}/change/").content.decode()
    assert "page-images-admin-history" not in html


def test_the_change_form_still_saves_the_record(client, staff, page):
    staff.user_permissions.add(*Permission.objects.filter(codename="change_page"))
    answer = client.post(
        f"{CHANGELIST}{page.pk}/change/",
        {"story": page.story_id, "image_text": "A grey fox", "_save": "Save"},
    )
    assert answer.status_code == 302, answer.content.decode()[:2000]
    page.refresh_from_db()
    assert page.image_text == "A grey fox"


def test_an_admin_that_drops_the_container_from_its_read_only_fields_goes_without(rf, staff, page):
    class Without(PageAdmin):
        def get_readonly_fields(self, request: Any, obj: Any = None) -> list[str]:
            return []

    request = rf.get("/")
    request.user = staff
    assert "page_image_container" not in Without(Page, django_admin.site).get_fields(request, page)


def test_the_add_form_has_no_container(client):
    answer = client.get(f"{CHANGELIST}add/")
    assert answer.status_code == 200
    assert "page-images-admin-template" not in answer.content.decode()


def test_an_admin_naming_its_fields_places_the_container_itself(client, staff, poster):
    staff.user_permissions.add(*Permission.objects.filter(codename="view_poster"))
    answer = client.get(f"/admin/testapp/poster/{poster.pk}/change/")
    html = answer.content.decode()
    assert html.index("page-images-admin-template") < html.index('name="artwork"')


def test_the_container_is_drawn_only_within_a_change_form(page):
    # Called outside the change form (no request to draw it for): nothing, never a crash.
    assert PageAdmin(Page, django_admin.site).page_image_container(page) == ""


def test_the_container_follows_the_record_while_it_generates(client, page):
    claims.claim(page)
    html = client.get(f"{CHANGELIST}{page.pk}/change/").content.decode()
    assert 'data-state="generating"' in html
    assert "data-page-images-follow" in html


def test_htmx_comes_from_django_htmx_or_from_the_site(monkeypatch):
    model_admin = PageAdmin(Page, django_admin.site)
    # With django-htmx installed: its copy, from the site's own static files (no network).
    monkeypatch.setattr("django.apps.apps.is_installed", lambda name: name == "django_htmx")
    assert "/static/django_htmx/htmx-2.min.js" in str(model_admin.media)
    # Without it: none, unless the admin names its own copy.
    monkeypatch.setattr("django.apps.apps.is_installed", lambda name: False)
    assert "htmx" not in str(model_admin.media)
    monkeypatch.setattr(PageAdmin, "page_images_htmx", "vendor/htmx.js", raising=False)
    assert "vendor/htmx.js" in str(model_admin.media)
    monkeypatch.setattr(PageAdmin, "page_images_htmx", None, raising=False)
    assert "htmx" not in str(model_admin.media)


def act(client: Any, pks: list[int]) -> list[str]:
    answer = client.post(
        CHANGELIST,
        {"action": "generate_images", "_selected_action": [str(pk) for pk in pks]},
        follow=True,
    )
    assert answer.status_code == 200
    return [str(message) for message in answer.context["messages"]]


def test_the_action_queues_what_it_may_and_says_what_it_skipped(
    client, make_page, eager, published
):
    fresh = [make_page(f"fresh {n}") for n in range(3)]
    pictured = with_picture(make_page("pictured"))
    running = make_page("running")
    claims.claim(running)
    blank = make_page("   ")
    published.clear()
    messages = act(client, [*(p.pk for p in fresh), pictured.pk, running.pk, blank.pk])
    assert messages == [
        "Queued 3 images. Skipped: 1 had a picture, 1 was already generating, 1 had no text."
    ]
    assert Generation.objects.count() == 3
    for page in fresh:
        page.refresh_from_db()
        assert page.image_state == "ready"
        assert Generation.objects.of(page).get().status == Generation.Status.DONE


def test_the_action_checks_the_permission_of_each_record(client, make_page, published, settings):
    allowed, refused = make_page("allowed"), make_page("refused")
    settings.PAGE_IMAGES = {
        **settings.PAGE_IMAGES,
        "PERMISSION": "tests.test_admin.only_allowed",
    }
    messages = act(client, [allowed.pk, refused.pk])
    assert messages == ["Queued 1 image. Skipped: 1 you may not change."]
    assert len(published) == 1


def only_allowed(user: Any, instance: Any) -> bool:
    return bool(instance.image_text == "allowed")


def test_the_action_counts_one_click_against_the_rate_limit(
    client, make_page, published, settings, monkeypatch
):
    from types import SimpleNamespace

    from page_images import ratelimit

    # One window for the whole test, even when the minute turns meanwhile.
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: 6000.0))
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "RATE_LIMIT": "1/m"}
    first, second = make_page("one"), make_page("two")
    assert act(client, [first.pk, second.pk]) == ["Queued 2 images."]
    third = make_page("three")
    assert act(client, [third.pk]) == ["Too many image requests: wait a minute and try again."]
    assert len(published) == 2
    third.refresh_from_db()
    assert not third.image_generating


def test_the_action_refuses_when_the_cache_is_down(client, page, published, monkeypatch):
    from page_images import ratelimit

    def broken(user: Any) -> bool:
        raise ratelimit.RateLimitUnavailable("down")

    monkeypatch.setattr(ratelimit, "allow", broken)
    [message] = act(client, [page.pk])
    assert "cannot be counted" in message
    assert published == []


def test_the_action_stops_at_the_quota_check(client, page, published, monkeypatch):
    assert admin.check_quota(RequestFactory().get("/"), [page]) is None  # the default: no quota
    monkeypatch.setattr(admin, "check_quota", lambda request, records: "Quota used up.")
    assert act(client, [page.pk]) == ["Quota used up."]
    assert published == []


def test_the_action_refuses_past_the_users_quota(client, page, published, settings):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "QUOTAS": {"per_user": {"day": 0}}}
    [message] = act(client, [page.pk])
    assert "today" in message
    assert published == []


def test_the_action_with_nothing_to_do_warns(client, make_page, published):
    pictured = with_picture(make_page("pictured"))
    assert act(client, [pictured.pk]) == ["Queued 0 images. Skipped: 1 had a picture."]
    assert published == []


def test_a_record_claimed_meanwhile_counts_as_already_generating(
    client, page, published, monkeypatch
):
    from page_images import queueing

    monkeypatch.setattr(queueing, "request_generations", lambda records, user: [])
    assert act(client, [page.pk]) == ["Queued 0 images. Skipped: 1 was already generating."]


def test_the_action_reports_a_broker_failure(client, page, monkeypatch):
    from page_images import queueing
    from page_images.exceptions import EnqueueError

    def down(records: Any, user: Any) -> Any:
        raise EnqueueError("The image job could not be queued.")

    monkeypatch.setattr(queueing, "request_generations", down)
    assert act(client, [page.pk]) == ["The image job could not be queued."]


def test_the_action_is_offered_beside_the_sites_own_but_not_in_popups(rf, staff):
    model_admin = PageAdmin(Page, django_admin.site)
    request = rf.get(CHANGELIST)
    request.user = staff
    assert "generate_images" in model_admin.get_actions(request)
    assert model_admin.get_actions(rf.get(CHANGELIST, {"_popup": "1"})) == {}

    class NoActions(PageAdmin):
        actions = None

    assert NoActions(Page, django_admin.site).get_actions(request) == {}

    class OwnAction(PageAdmin):
        actions = ["generate_images"]

    assert list(OwnAction(Page, django_admin.site).get_actions(request)) == ["generate_images"]
    request.user = type(staff).objects.create_user("viewer", is_staff=True)
    request.user.user_permissions.add(*Permission.objects.filter(codename="view_page"))
    request.user = type(staff).objects.get(pk=request.user.pk)
    assert "generate_images" not in model_admin.get_actions(request)


def test_the_history_can_be_read_and_searched_but_never_changed(client, page, staff):
    other = Poster.objects.create(headline="A fair")
    now = timezone.now()
    generations = [
        Generation.objects.create(
            content_type_id=ct,
            object_id=str(pk),
            token=f"00000000-0000-4000-8000-00000000000{n}",
            user=staff,
            prompt=prompt,
            model="openai/gpt-image-1",
            size="1024x1024",
            status=status,
            started_at=now - timedelta(seconds=12),
            finished_at=now if status == "done" else None,
            cost=Decimal("0.04"),
        )
        for n, (ct, pk, prompt, status) in enumerate(
            [
                (content_type(page), page.pk, "A red fox", "done"),
                (content_type(other), other.pk, "A blue hen", "failed"),
            ]
        )
    ]
    answer = client.get("/admin/page_images/generation/")
    assert answer.status_code == 200
    html = answer.content.decode()
    assert f"/admin/testapp/page/{page.pk}/change/" in html  # a link to the record's admin
    assert "12.0 s" in html
    assert "0.04" in html
    assert (
        client.get("/admin/page_images/generation/", {"q": "hen"}).context["cl"].result_count == 1
    )
    assert (
        client.get("/admin/page_images/generation/", {"status__exact": "failed"})
        .context["cl"]
        .result_count
        == 1
    )
    change = client.get(f"/admin/page_images/generation/{generations[0].pk}/change/")
    assert change.status_code == 200
    assert 'name="_save"' not in change.content.decode()  # read-only
    assert client.get("/admin/page_images/generation/add/").status_code == 403
    assert (
        client.post(
            f"/admin/page_images/generation/{generations[0].pk}/delete/", {"post": "yes"}
        ).status_code
        == 403
    )
    superuser = type(staff).objects.create_superuser("root", password="pw")
    client.force_login(superuser)
    assert client.get("/admin/page_images/generation/add/").status_code == 403


def test_the_history_names_a_record_without_an_admin_in_words(page):
    from django.contrib.contenttypes.models import ContentType

    from tests.testapp.models import Bulletin

    bulletin = Bulletin.objects.create(text="News")
    row = Generation(
        content_type=ContentType.objects.get_for_model(Bulletin),
        object_id=str(bulletin.pk),
        token="00000000-0000-4000-8000-000000000009",
    )
    assert admin._record_link(row) == f"testapp.bulletin #{bulletin.pk}"
    assert admin.GenerationAdmin(Generation, django_admin.site).duration_display(row) == ""


def content_type(record: Any) -> int:
    from django.contrib.contenttypes.models import ContentType

    return int(ContentType.objects.get_for_model(record).pk)
