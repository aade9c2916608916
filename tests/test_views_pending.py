"""Issue 11's view cases; folded into test_views.py once the tiers branch is merged."""

from __future__ import annotations

import pytest
from django.test import Client

from page_images.references import sign_record
from tests.servers import unused_port

pytestmark = pytest.mark.django_db(transaction=True)

HTMX = {"HTTP_HX_REQUEST": "true"}
TRIGGER = "/page-images/generate/"


def click(user, page):
    client = Client()
    client.force_login(user)
    return client.post(TRIGGER, {"ref": sign_record(page), "next": "/"}, **HTMX)


def test_the_broker_failure_is_said_once(editor, page, settings):
    from tests.support.jobs import celery_app

    with celery_app(f"redis://127.0.0.1:{unused_port()}/0"):
        response = click(editor, page)
    assert response.status_code == 503
    assert response.content.decode().count("could not be queued") == 1


def test_a_cache_outage_answers_503_with_the_containers_message(editor, page, settings, published):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{unused_port()}/0",
        }
    }
    response = click(editor, page)
    assert response.status_code == 503
    html = response.content.decode()
    assert "cache is unreachable" in html
    assert 'class="page-images' in html  # the container, which the script swaps in
    assert published == []
    page.refresh_from_db()
    assert page.image_state == "empty"


def fragment(user, page):
    client = Client()
    if user is not None:
        client.force_login(user)
    return client.get("/page-images/fragment/", {"ref": sign_record(page)}, **HTMX)


def test_a_job_presumed_dead_shows_try_again_with_no_command_run(editor, page, settings):
    from datetime import timedelta

    from django.utils import timezone

    from page_images import claims

    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "CLAIM_TIMEOUT": 60}
    token = claims.claim(page)
    claims.touch_claim(type(page), page.pk, token)
    html = fragment(editor, page).content.decode()
    assert 'data-state="generating"' in html
    assert "load delay:61s" in html or "load delay:62s" in html  # the page re-reads by itself
    type(page).objects.filter(pk=page.pk).update(
        image_started_at=timezone.now() - timedelta(seconds=61)
    )
    html = fragment(editor, page).content.decode()
    assert 'data-state="error"' in html
    assert "did not finish in time" in html
    assert "Try again" in html
    assert click(editor, page).status_code == 200  # the click retakes the dead job's claim
    page.refresh_from_db()
    assert page.image_claim_token not in (None, token)


def test_an_editor_can_cancel_a_queued_job(editor, page, published):
    click(editor, page)
    assert len(published) == 1
    html = fragment(editor, page).content.decode()
    assert "Cancel" in html
    client = Client()
    client.force_login(editor)
    response = client.post("/page-images/cancel/", {"ref": sign_record(page)}, **HTMX)
    assert response.status_code == 200
    assert 'data-state="empty"' in response.content.decode()
    page.refresh_from_db()
    assert (page.image_generating, page.image_claim_token, page.image_error) == (False, None, "")


def test_cancel_needs_the_same_permission_as_the_click(reader, page):
    from page_images import claims

    claims.claim(page)
    client = Client()
    client.force_login(reader)
    response = client.post("/page-images/cancel/", {"ref": sign_record(page)}, **HTMX)
    assert response.status_code == 403
    page.refresh_from_db()
    assert page.image_generating


def test_a_cancelled_job_discards_its_picture(page, settings):
    from page_images import claims, tasks

    settings.PAGE_IMAGES = {"BACKEND": "tests.backends.ScriptedBackend", "SIZE": "32x32"}
    token = claims.claim(page)
    assert claims.cancel(type(page).objects.get(pk=page.pk))
    job = tasks.ImageJob(label=page._meta.label, pk=str(page.pk), token=token)
    tasks.generate_image.apply(args=(job.model_dump(mode="json"),))
    page.refresh_from_db()
    assert (page.image_state, page.image.name) == ("empty", "")


def test_an_editors_upload_during_a_job_is_kept(page, settings):
    # The admin's save() writes back the whole row, claim token included: the job must still not
    # overwrite the picture an editor chose while it worked.
    from django.core.files.base import ContentFile

    from page_images import claims
    from page_images.exceptions import StaleClaimError
    from page_images.testing import png_bytes

    token = claims.claim(page)
    as_the_job_read_it = type(page).objects.get(pk=page.pk)
    edited = type(page).objects.get(pk=page.pk)
    edited.image.save("mine.png", ContentFile(png_bytes(8, 8)), save=True)  # a full save()
    made = ContentFile(png_bytes(32, 32), name="made.png")
    with pytest.raises(StaleClaimError):
        claims.set_image_and_notify(as_the_job_read_it, made, token=token)
    page.refresh_from_db()
    assert page.image.name.endswith("mine.png")
    assert (page.image_state, page.image_generating) == ("ready", False)


# --- Visitors see the picture or the site's fallback, never an editor's state -----------------


def render_for(user, source, **context):
    from django.template import Context, Template
    from django.test import AsyncRequestFactory

    request = AsyncRequestFactory().get("/stories/")
    request.user = user
    return Template("{% load page_images %}" + source).render(
        Context({"request": request, **context})
    )


@pytest.mark.parametrize("state", ["generating", "error"])
def test_a_visitor_sees_neither_spinner_nor_error_nor_a_stream(page, state):
    from django.contrib.auth.models import AnonymousUser
    from django.utils import timezone

    if state == "generating":
        page.image_generating, page.image_claimed_at = True, timezone.now()
    else:
        page.image_error = "…rejected as a result of our safety system"
    html = render_for(AnonymousUser(), "{% page_image page %}{% page_images_stream %}", page=page)
    assert 'data-state="empty"' in html
    assert "Generating" not in html
    assert "safety system" not in html
    assert "data-stream-url" not in html


def test_a_visitor_sees_the_picture_while_an_editor_regenerates_it(page, editor):
    from django.contrib.auth.models import AnonymousUser
    from django.utils import timezone

    page.image = "page_images/x.png"
    page.image_generating, page.image_claimed_at = True, timezone.now()
    visitor = render_for(AnonymousUser(), "{% page_image page %}", page=page)
    assert 'data-state="ready"' in visitor
    assert "/media/page_images/x.png" in visitor
    assert 'data-state="generating"' in render_for(editor, "{% page_image page %}", page=page)


def test_the_sites_fallback_is_shown_to_visitors_and_the_chip_to_editors(page, editor, reader):
    source = '{% page_image page fallback="testapp/no_image.html" %}'
    for user in (reader, None):
        from django.contrib.auth.models import AnonymousUser

        html = render_for(user or AnonymousUser(), source, page=page)
        assert 'class="site-placeholder"' in html
        assert "Generate image" not in html
    html = render_for(editor, source, page=page)
    assert "site-placeholder" not in html
    assert "Generate image" in html


def test_the_fragment_shows_a_visitor_no_error_text(page):
    page.image_error = "…rejected as a result of our safety system"
    page.save()
    html = fragment(None, page).content.decode()
    assert "safety system" not in html
    assert 'data-state="empty"' in html


def test_the_fragment_of_a_row_the_default_manager_hides_is_gone_for_visitors(editor, db):
    from django.contrib.auth.models import Permission

    from tests.testapp.models import Bulletin

    hidden = Bulletin.objects.create(text="Embargoed", published=False, image="page_images/e.png")
    response = fragment(None, hidden)
    assert response.status_code == 404
    assert "e.png" not in response.content.decode()
    editor.user_permissions.add(Permission.objects.get(codename="change_bulletin"))
    editor = type(editor).objects.get(pk=editor.pk)
    assert fragment(editor, hidden).status_code == 200


# --- The stream tag works wherever it is placed ---------------------------------------------


def test_a_stream_tag_before_the_containers_leaves_the_token_to_the_script(editor, make_page):
    from django.utils import timezone

    generating = make_page("one")
    generating.image_generating, generating.image_claimed_at = True, timezone.now()
    pages = [generating, make_page("two")]
    html = render_for(
        editor,
        "{% page_images_stream %}{% for p in pages %}{% page_image p %}{% endfor %}",
        pages=pages,
    )
    assert 'data-token-url="/page-images/events/token/"' in html
    assert "data-stream-url" not in html
    assert html.count("data-page-images-follow") == 2
    after = render_for(
        editor,
        "{% for p in pages %}{% page_image p %}{% endfor %}{% page_images_stream %}",
        pages=pages,
    )
    assert "data-stream-url" in after


def test_a_visitors_page_follows_nothing(page):
    from django.contrib.auth.models import AnonymousUser

    html = render_for(AnonymousUser(), "{% page_images_stream %}{% page_image page %}", page=page)
    assert "data-page-images-follow" not in html


def test_the_token_url_gives_a_stream_bound_to_the_callers_session(editor, make_page):
    from page_images.live.tokens import unsign_references

    pages = [make_page("one"), make_page("two")]
    client = Client()
    client.force_login(editor)
    refs = [sign_record(p) for p in pages] + ["forged:1:abc"]
    response = client.post("/page-images/events/token/", {"ref": refs})
    assert response.status_code == 200
    token = response.json()["url"].split("refs=", 1)[1]
    session_key = client.cookies["sessionid"].value
    assert unsign_references(token, session_key=session_key) == sorted(
        p.image_reference for p in pages
    )


def test_the_token_url_gives_visitors_nothing(page, editor):
    response = Client().post("/page-images/events/token/", {"ref": [sign_record(page)]})
    assert response.status_code == 403
    client = Client()
    client.force_login(editor)
    assert client.post("/page-images/events/token/", {"ref": ["forged"]}).status_code == 400
