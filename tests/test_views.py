"""The trigger and fragment views: every refusal is a 4xx with its message and no job."""

from __future__ import annotations

import pytest
from django.core import signing
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.test import Client
from django.test.client import BOUNDARY, encode_multipart
from django.urls import reverse

from page_images import claims
from page_images.references import sign_record
from page_images.signer import SALT
from page_images.testing import png_bytes
from tests.reliability import case
from tests.servers import unused_port
from tests.support.jobs import celery_app
from tests.support.web import HTMX, TRIGGER, client_for, post
from tests.testapp.models import Note, Page

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()


def test_urls():
    assert reverse("page_images:trigger") == TRIGGER
    assert reverse("page_images:fragment") == "/page-images/fragment/"
    assert reverse("page_images:events") == "/page-images/events/"


def test_editor_click_claims_and_queues_one_job(editor, page, published):
    response = post(client_for(editor), page)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-state="generating"' in html
    assert "Generating image" in html
    assert len(published) == 1
    page.refresh_from_db()
    assert page.image_generating


@case(
    "concurrency",
    "A second click (or a replayed valid POST) while the job runs",
    "200 with the generating container; no second job.",
)
def test_second_click_shows_the_current_state_and_queues_nothing(editor, page, published):
    client = client_for(editor)
    post(client, page)
    response = post(client, page)
    assert response.status_code == 200
    assert 'data-state="generating"' in response.content.decode()
    assert len(published) == 1


@case(
    "concurrency",
    "A click sent from a page drawn before another editor's picture landed",
    "200 with the picture; no job, so nobody pays for a second one or loses the first.",
)
def test_click_on_a_record_that_got_its_picture_meanwhile_shows_it(editor, page, published):
    token = claims.claim(page)
    claims.set_image_and_notify(page, ContentFile(png_bytes(), name="a.png"), token=token)
    response = post(client_for(editor), page)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-state="ready"' in html
    assert "<img" in html
    assert published == []
    page.refresh_from_db()
    assert not page.image_generating


def test_click_that_loses_the_claim_shows_the_winners_state(editor, page, published, monkeypatch):
    # The view loaded the record before another click claimed it: it must answer with the
    # stored state (generating), not the chip it loaded.
    from page_images import clicks

    loaded = clicks.load_record

    def load_then_lose(ref):
        instance = loaded(ref)
        assert claims.claim(type(instance).objects.get(pk=instance.pk)) is not None
        return instance

    monkeypatch.setattr(clicks, "load_record", load_then_lose)
    response = post(client_for(editor), page)
    assert response.status_code == 200
    assert 'data-state="generating"' in response.content.decode()
    assert published == []


def test_click_on_a_record_deleted_while_it_was_handled_is_not_found(
    editor, page, published, monkeypatch
):
    # Loaded, then deleted by someone else before the claim: there is no state left to show.
    from page_images import clicks

    loaded = clicks.load_record

    def load_then_delete(ref):
        instance = loaded(ref)
        type(instance).objects.filter(pk=instance.pk).delete()
        return instance

    monkeypatch.setattr(clicks, "load_record", load_then_delete)
    response = post(client_for(editor), page)
    assert response.status_code == 404
    assert "This record no longer exists." in response.content.decode()
    assert published == []


@case(
    "access",
    "Anonymous click (htmx)",
    "403 'You may not generate an image for this record.'; no job.",
)
def test_anonymous_htmx_is_forbidden(page, published):
    response = post(Client(), page)
    assert response.status_code == 403
    assert "may not generate" in response.content.decode()
    assert published == []


@case(
    "access",
    "Anonymous plain POST (no JavaScript)",
    "Redirect to the login page; no job.",
)
def test_anonymous_plain_post_is_sent_to_log_in(page, published, settings):
    response = Client().post(TRIGGER, {"ref": sign_record(page), "next": "/stories/"})
    assert response.status_code == 302
    assert settings.LOGIN_URL in response["Location"]
    assert published == []


@case(
    "access",
    "Logged in without the model's change permission",
    "403 with the container as it was, without a chip; no job, no claim.",
)
def test_user_without_permission_is_forbidden(reader, page, published):
    response = post(client_for(reader), page)
    assert response.status_code == 403
    assert 'data-state="empty"' in response.content.decode()
    assert "Generate image" not in response.content.decode()
    assert published == []
    page.refresh_from_db()
    assert not page.image_generating


def only_alice(user, instance):
    return user.username == "alice"


@case(
    "access",
    "Another user's record where the site's PERMISSION hook says no",
    "403; no job. The hook's yes lets the click through.",
)
def test_site_wide_permission_hook(django_user_model, editor, page, published, settings):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "PERMISSION": "tests.test_views.only_alice"}
    assert post(client_for(editor), page).status_code == 403
    alice = django_user_model.objects.create_user("alice")
    assert post(client_for(alice), page).status_code == 200
    assert len(published) == 1


@case(
    "access",
    "The model's can_generate_image() says no",
    "403; no job.",
)
def test_a_model_can_decide_for_itself(editor, page, published, monkeypatch):
    monkeypatch.setattr(
        Page, "can_generate_image", lambda self, user: self.image_text.startswith("Mine")
    )
    assert post(client_for(editor), page).status_code == 403
    assert published == []


@case(
    "requests",
    "Tampered, unsigned, empty or wrongly signed references",
    "400 'This button is out of date. Reload the page.'; no job.",
)
@pytest.mark.parametrize(
    "ref", ["", "garbage", "testapp.page:1", signing.Signer().sign("testapp.page:1")]
)
def test_tampered_references_are_bad_requests(editor, page, published, ref):
    response = post(client_for(editor), ref)
    assert response.status_code == 400
    assert "out of date" in response.content.decode()
    assert published == []


@case(
    "requests",
    "A validly signed reference to a model that does not use the mixin",
    "400; no job.",
)
def test_references_to_other_models_are_bad_requests(editor, published, db):
    note = Note.objects.create(text="secret")
    response = post(client_for(editor), signing.Signer(salt=SALT).sign(f"testapp.note:{note.pk}"))
    assert response.status_code == 400
    assert published == []


@case(
    "requests",
    "A reference to a record deleted since the page was drawn",
    "404 'This record no longer exists.'; no job.",
)
def test_deleted_record_is_not_found(editor, page, published):
    token = sign_record(page)
    Page.objects.filter(pk=page.pk).delete()
    assert post(client_for(editor), token).status_code == 404
    assert published == []


@case(
    "requests",
    "GET instead of POST on the trigger",
    "405; no job.",
)
def test_get_is_not_allowed(editor, page):
    assert client_for(editor).get(TRIGGER, {"ref": sign_record(page)}).status_code == 405


@case(
    "requests",
    "POST without the CSRF token",
    "403 from Django's CSRF check; no job.",
)
def test_missing_csrf_token_is_refused(editor, page, published):
    response = post(client_for(editor, enforce_csrf_checks=True), page)
    assert response.status_code == 403
    assert published == []


@case(
    "requests",
    "A body larger than 4 KB",
    "400 'The request was too large.'; no job.",
)
def test_oversized_body_is_refused(editor, page, published):
    client = client_for(editor)
    response = client.post(TRIGGER, {"ref": sign_record(page), "junk": "x" * 10_000}, **HTMX)
    assert response.status_code == 400
    assert published == []


@case(
    "requests",
    "A click on a record with no text",
    "400 'There is no text to make a picture from.'; nothing claimed, no provider call.",
)
def test_empty_prompt_explains_itself(editor, make_page, published):
    response = post(client_for(editor), make_page(""))
    assert response.status_code == 400
    assert "no text" in response.content.decode()
    assert published == []


@case(
    "broker",
    "Broker down at the click (service and view)",
    "503 'The image job could not be queued (the task queue is unreachable). Try again.'; the "
    "claim is released.",
)
def test_broker_down_is_503_with_a_message_and_nothing_claimed(editor, page):
    with celery_app(f"redis://127.0.0.1:{unused_port()}/0"):
        response = post(client_for(editor), page)
    assert response.status_code == 503
    assert "could not be queued" in response.content.decode()
    page.refresh_from_db()
    assert not page.image_generating


@case(
    "requests",
    "More clicks than RATE_LIMIT from one account",
    "429 'Too many images requested. Wait a minute and try again.'; no job.",
)
def test_rate_limit(editor, make_page, published, settings):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "RATE_LIMIT": "2/m"}
    client = client_for(editor)
    codes = [post(client, make_page(f"text {i}")).status_code for i in range(4)]
    assert codes == [200, 200, 429, 429]
    assert len(published) == 2


def test_plain_post_redirects_back(editor, page, published):
    response = client_for(editor).post(TRIGGER, {"ref": sign_record(page), "next": "/stories/"})
    assert (response.status_code, response["Location"]) == (302, "/stories/")
    assert len(published) == 1


@case(
    "requests",
    "A next or Referer pointing off-site",
    "The redirect goes to / instead.",
)
def test_plain_post_never_redirects_off_site(editor, page):
    response = client_for(editor).post(
        TRIGGER, {"ref": sign_record(page), "next": "https://evil.example/"}
    )
    assert response["Location"] == "/"


@case(
    "rendering",
    "An error message with HTML in it",
    "Rendered escaped, with 'Try again'.",
)
def test_fragment_shows_the_current_state(page, editor):
    page.image_error = "Refused <b>by</b> policy"
    page.save()
    response = client_for(editor).get("/page-images/fragment/", {"ref": sign_record(page)})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-state="error"' in html
    assert "Refused &lt;b&gt;by&lt;/b&gt; policy" in html
    assert "Try again" in html
    assert "no-cache" in response["Cache-Control"]


def test_fragment_refuses_bad_references(db):
    assert Client().get("/page-images/fragment/", {"ref": "nope"}).status_code == 400


@case(
    "rendering",
    "A record text with <script> shown in the container",
    "Rendered as text (&lt;script&gt;), never as markup.",
)
def test_prompt_with_script_is_escaped_everywhere(editor, make_page):
    page = make_page('<script>alert("x")</script>', image_alt='<script>alert("x")</script>')
    page.image = "page_images/x.png"
    page.save()
    html = (
        client_for(editor)
        .get("/page-images/fragment/", {"ref": sign_record(page)})
        .content.decode()
    )
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


@case(
    "requests",
    "A Content-Length that is not a number (found by fuzzing)",
    "400 'The request could not be read.'; no job.",
)
@pytest.mark.parametrize("length", ["abc", "1e9", "0x10"])
def test_non_numeric_content_length_is_a_bad_request(editor, page, published, length):
    # Found by fuzzing (tests/faults/test_fuzzing.py): int() of the header used to be a 500.
    response = client_for(editor).post(
        TRIGGER, {"ref": sign_record(page)}, CONTENT_LENGTH=length, **HTMX
    )
    assert response.status_code == 400
    assert "could not be read" in response.content.decode()
    assert published == []


@case(
    "requests",
    "A multipart body whose charset is no text encoding (found by fuzzing)",
    "400; no job.",
)
def test_multipart_charset_that_is_no_text_encoding_is_a_bad_request(editor, page, published):
    # Found by fuzzing: Django's multipart parser raises LookupError for "charset=rot13" (a codec,
    # but not a text encoding); the view used to let it through as a 500.
    body = encode_multipart(BOUNDARY, {"ref": sign_record(page)})
    response = client_for(editor).generic(
        "POST",
        TRIGGER,
        body,
        content_type=f"multipart/form-data; boundary={BOUNDARY}; charset=rot13",
        **HTMX,
    )
    assert response.status_code == 400
    assert "could not be read" in response.content.decode()
    assert published == []


def test_fragment_of_a_deleted_record_is_404_with_a_message(page, editor):
    reference = sign_record(page)
    page.delete()
    response = client_for(editor).get("/page-images/fragment/", {"ref": reference})
    assert response.status_code == 404
    assert "This record no longer exists." in response.content.decode()


# --- Issue 11: outages, dead jobs, cancel, uploads, visitors, stream placement ---------------


def click(user, page):
    client = Client()
    client.force_login(user)
    return client.post(TRIGGER, {"ref": sign_record(page), "next": "/"}, **HTMX)


@case(
    "broker",
    "Broker unreachable at the click: the answer's message",
    "503 with the sentence once: the record carries it, the container does not repeat it.",
)
def test_the_broker_failure_is_said_once(editor, page, settings):
    from tests.support.jobs import celery_app

    with celery_app(f"redis://127.0.0.1:{unused_port()}/0"):
        response = click(editor, page)
    assert response.status_code == 503
    assert response.content.decode().count("could not be queued") == 1


@case(
    "requests",
    "The rate limit's cache (Redis) is down at the click",
    "503 with 'Clicks cannot be counted right now…' in the container; no job, nothing claimed.",
)
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


@case(
    "worker",
    "A job's worker died mid-job and nobody runs a command",
    "At CLAIM_TIMEOUT after the attempt started the container re-reads itself: 'did not finish "
    "in time' with Try again; the click retakes the claim.",
)
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


@case(
    "worker",
    "A job lost from the queue, or one the editor gives up on",
    "The container's Cancel button releases the claim at once; the chip is back.",
)
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


@case(
    "worker",
    "A cancelled job finishes anyway",
    "Its picture is discarded; the record stays as the editor left it.",
)
def test_a_cancelled_job_discards_its_picture(page, settings):
    from page_images import claims, tasks

    settings.PAGE_IMAGES = {"BACKEND": "tests.backends.ScriptedBackend", "SIZE": "32x32"}
    token = claims.claim(page)
    assert claims.cancel(type(page).objects.get(pk=page.pk))
    job = tasks.ImageJob(label=page._meta.label, pk=str(page.pk), token=token)
    tasks.generate_image.apply(args=(job.model_dump(mode="json"),))
    page.refresh_from_db()
    assert (page.image_state, page.image.name) == ("empty", "")


@case(
    "storage",
    "An editor uploads a picture while a job runs (a full save() writes the claim token back)",
    "The editor's picture stays; the job's is discarded and its claim given back.",
)
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


@case(
    "access",
    "An anonymous visitor views a record whose job is running or failed",
    "The picture or nothing: no spinner, no refusal text, no event stream.",
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


@case(
    "access",
    "A visitor holds the fragment reference of a row the default manager hides",
    "404 'This record no longer exists.'; no image URL.",
)
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


@case(
    "events",
    "The stream tag placed in <head>, before the containers",
    "The script asks events/token/ for the page's stream once the containers are there.",
)
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


# The editor's tools: the prompt panel, review, regenerate and restore.

PANEL = "/page-images/panel/"


def panel(user, page, show=None):
    query = {"ref": sign_record(page) if not isinstance(page, str) else page}
    if show:
        query["show"] = show
    return client_for(user).get(PANEL, query, **HTMX)


def press(user, url, page, **data):
    """A button of the container (accept, discard, restore) as htmx posts it."""
    return client_for(user).post(url, {"ref": sign_record(page), **data}, **HTMX)


def last_generation(page):
    from page_images.history import Generation

    return Generation.objects.of(page).first()


def test_the_prompt_panel_shows_the_records_prompt_and_the_choices(editor, page, configure):
    configure(
        PROMPT_PANEL=True,
        PRESETS={"ink": {"label": "Ink drawing"}, "oil": {}},
        ASPECT_RATIOS=["1:1", "3:2"],
    )
    response = panel(editor, page)
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    html = response.content.decode()
    assert 'data-state="compose"' in html
    assert f">{page.image_text}</textarea>" in html
    assert '<option value="ink">Ink drawing</option><option value="oil">oil</option>' in html
    assert 'value="1:1" checked' in html
    assert 'name="replace"' not in html  # nothing to replace yet


@case(
    "access",
    "A panel (the prompt, the earlier pictures) asked for by a visitor, or with a bad reference",
    "403, 400 or 404 with a message; nothing about the record is shown.",
)
def test_the_panel_has_the_triggers_checks(editor, reader, page, configure):
    configure(PROMPT_PANEL=True)
    assert panel(reader, page).status_code == 403
    assert panel(None, page).status_code == 403
    assert panel(editor, "testapp.page:1:forged").status_code == 400
    ref = sign_record(page)
    page.delete()
    assert panel(editor, ref).status_code == 404


def test_the_earlier_pictures_panel_offers_restore(editor, page, configure):
    from tests.support.pictures import kept, with_new_picture

    configure(REGENERATE=True)
    with_new_picture(page)
    earlier = kept(page, "page_images/first.png")
    html = panel(editor, page, show="earlier").content.decode()
    assert 'data-state="earlier"' in html
    assert 'action="/page-images/restore/"' in html
    assert f'name="picture" value="{earlier.pk}"' in html
    assert 'aria-label="Restore earlier picture 1"' in html
    earlier.delete()
    html = panel(editor, page, show="earlier").content.decode()
    assert "There are no earlier pictures to restore." in html


def test_a_sent_prompt_preset_and_shape_are_what_the_job_draws(editor, page, configure, published):
    configure(PROMPT_PANEL=True, PRESETS={"ink": {"prompt": "In ink."}}, ASPECT_RATIOS=["3:2"])
    choices = {"prompt": "A grey wolf", "preset": "ink", "aspect_ratio": "3:2"}
    response = client_for(editor).post(TRIGGER, {"ref": sign_record(page), **choices}, **HTMX)
    assert response.status_code == 200
    assert len(published) == 1
    row = last_generation(page)
    assert (row.prompt, row.prompt_edited, row.preset, row.aspect_ratio, row.user) == (
        "A grey wolf\n\nIn ink.",
        True,
        "ink",
        "3:2",
        editor,
    )
    assert row.size == "320x192"  # 3:2 at SIZE 256x256's area, by the local backend


def test_without_the_panel_a_posted_prompt_is_ignored(editor, page, published):
    client_for(editor).post(TRIGGER, {"ref": sign_record(page), "prompt": "A grey wolf"}, **HTMX)
    row = last_generation(page)
    assert (row.prompt, row.prompt_edited) == (page.image_text, False)


@case(
    "requests",
    "A prompt from the panel the site refuses (too long, a style or shape no longer offered)",
    "400 with the reason, back in the panel with the text as typed; nothing claimed.",
)
def test_a_refused_choice_goes_back_to_the_panel_with_the_typed_text(
    editor, page, configure, published
):
    configure(PROMPT_PANEL=True, MAX_PROMPT_LENGTH=20)
    typed = "A grey wolf howling at the moon"
    response = client_for(editor).post(TRIGGER, {"ref": sign_record(page), "prompt": typed}, **HTMX)
    assert response.status_code == 400
    html = response.content.decode()
    assert 'data-state="compose"' in html
    assert f">{typed}</textarea>" in html
    assert "at most 20 characters" in html
    assert published == []
    page.refresh_from_db()
    assert not page.image_generating


def test_a_refused_choice_without_a_prompt_answers_with_the_container(
    editor, page, configure, published
):
    configure(PRESETS={"ink": {}})
    data = {"ref": sign_record(page), "preset": "oil"}
    response = client_for(editor).post(TRIGGER, data, **HTMX)
    assert response.status_code == 400
    html = response.content.decode()
    assert "not offered any more" in html
    assert 'data-state="empty"' in html
    plain = client_for(editor).post(TRIGGER, {**data, "next": "/stories/"})
    assert (plain.status_code, plain["Location"]) == (302, "/stories/")
    assert published == []


@pytest.mark.parametrize(
    ("setting", "replaced"),
    [
        ({}, False),
        ({"REGENERATE": True}, True),
        ({"REVIEW": True}, True),
        ({"VARIANTS": 2}, True),  # candidates to choose from are a review too
    ],
)
def test_replace_is_honoured_only_where_the_site_offers_regenerate(
    editor, page, configure, published, setting, replaced
):
    from tests.support.pictures import with_new_picture

    configure(**setting)
    with_new_picture(page)
    response = client_for(editor).post(TRIGGER, {"ref": sign_record(page), "replace": "1"}, **HTMX)
    assert response.status_code == 200
    assert len(published) == int(replaced)
    page.refresh_from_db()
    assert page.image_generating is replaced


def test_accept_publishes_the_chosen_candidate(editor, page, configure):
    from tests.support.pictures import in_review

    configure(REVIEW=True)
    chosen, _other = in_review(page)
    response = press(editor, "/page-images/accept/", page, picture=chosen.pk)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-state="ready"' in html
    assert chosen.name in html
    assert "Regenerate" in html


@case(
    "concurrency",
    "Accept or restore pressed on a page drawn before another editor chose or restored",
    "409 'This changed meanwhile: here is what it shows now.' with the record as it is now.",
)
def test_an_out_of_date_accept_or_restore_is_409_with_what_is_now(editor, page, configure):
    from tests.support.pictures import in_review

    configure(REVIEW=True)
    chosen, other = in_review(page)
    assert press(editor, "/page-images/accept/", page, picture=chosen.pk).status_code == 200
    response = press(editor, "/page-images/accept/", page, picture=other.pk)
    assert response.status_code == 409
    html = response.content.decode()
    assert "This changed meanwhile" in html
    assert 'data-state="ready"' in html
    assert press(editor, "/page-images/restore/", page, picture=chosen.pk).status_code == 409


def test_an_out_of_date_button_of_a_deleted_record_is_404(editor, page, monkeypatch):
    from page_images import pictures

    def deleted_meanwhile(record, picture_id):
        Page.objects.filter(pk=record.pk).delete()
        return False

    monkeypatch.setattr(pictures, "accept", deleted_meanwhile)
    assert press(editor, "/page-images/accept/", page, picture=1).status_code == 404


@case(
    "requests",
    "Accept, discard or restore posted without a picture, or with one that is not a number",
    "400 'This button is out of date. Reload the page.'; nothing changes.",
)
@pytest.mark.parametrize(
    "url", ["/page-images/accept/", "/page-images/discard/", "/page-images/restore/"]
)
@pytest.mark.parametrize("picture", [None, "", "abc", "1.5", "9" * 30])
def test_a_malformed_picture_is_a_bad_request(editor, page, configure, url, picture):
    from tests.support.pictures import in_review

    configure(REVIEW=True)
    in_review(page)
    data = {} if picture is None else {"picture": picture}
    response = press(editor, url, page, **data)
    assert response.status_code == 400
    assert "out of date" in response.content.decode()
    page.refresh_from_db()
    assert page.image_state == "review"


def test_discard_shows_the_live_picture_again(editor, page, configure):
    from tests.support.pictures import in_review, with_new_picture

    configure(REVIEW=True)
    with_new_picture(page)
    shown, _ = in_review(page)
    html = fragment(editor, page).content.decode()
    assert 'action="/page-images/discard/"' in html
    assert html.count(f'name="picture" value="{shown.pk}"') == 2  # its Use button, and Discard
    response = press(editor, "/page-images/discard/", page, picture=shown.pk)
    assert response.status_code == 200
    assert 'data-state="ready"' in response.content.decode()


@case(
    "concurrency",
    "Discard pressed on a page drawn before another editor's Regenerate made new candidates",
    "409 with the new candidates, which stay: nobody has seen them yet.",
)
def test_an_out_of_date_discard_keeps_the_newer_review(editor, page, configure):
    from page_images import pictures
    from tests.support.pictures import in_review

    configure(REVIEW=True)
    seen, _ = in_review(page)
    newer = in_review(Page.objects.get(pk=page.pk))  # another editor regenerated meanwhile
    response = press(editor, "/page-images/discard/", page, picture=seen.pk)
    assert response.status_code == 409
    assert 'data-state="review"' in response.content.decode()
    assert pictures.candidates(page) == newer


def test_restore_brings_back_the_earlier_picture(editor, page, configure):
    from tests.support.pictures import kept, with_new_picture

    configure(REGENERATE=True)
    with_new_picture(page)
    first = page.image.name
    earlier = kept(page, first)
    with_new_picture(page)
    response = press(editor, "/page-images/restore/", page, picture=earlier.pk)
    assert response.status_code == 200
    assert first in response.content.decode()


@pytest.mark.parametrize("url", ["/page-images/accept/", "/page-images/discard/"])
def test_the_review_buttons_need_the_same_permission_as_the_click(reader, page, url):
    from tests.support.pictures import in_review

    (candidate, _) = in_review(page)
    assert press(reader, url, page, picture=candidate.pk).status_code == 403
    page.refresh_from_db()
    assert page.image_state == "review"


@case(
    "requests",
    "A prompt from the panel as long as MAX_PROMPT_LENGTH allows, in 4-byte characters",
    "Accepted (the body limit grows with the panel); a larger body is still 400.",
)
def test_the_body_limit_makes_room_for_the_longest_prompt(editor, page, configure, published):
    configure(PROMPT_PANEL=True, MAX_PROMPT_LENGTH=1000)
    client = client_for(editor)
    longest = "🦊" * 1000
    response = client.post(TRIGGER, {"ref": sign_record(page), "prompt": longest}, **HTMX)
    assert response.status_code == 200
    assert len(published) == 1
    response = client.post(
        TRIGGER, {"ref": sign_record(page), "prompt": longest, "junk": "x" * 13_000}, **HTMX
    )
    assert response.status_code == 400
    assert "too large" in response.content.decode()
