"""The shared rendering (page_images.rendering) and the tags' fast path: the same markup as Django's
own inclusion tags would give, for any state, template override, key or language."""

from __future__ import annotations

import html
import re
import uuid
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.core import signing
from django.template import Context, Template
from django.test import AsyncRequestFactory, Client, RequestFactory
from django.test.utils import isolate_apps
from django.urls import include, path
from django.utils import timezone
from django.utils.translation import gettext_lazy

from page_images.references import event_key, load_record, sign_record
from page_images.rendering import _urls_follow_language, container_context
from page_images.signer import SALT, RecordSigner

pytestmark = pytest.mark.django_db

CSRF = re.compile(r'name="csrfmiddlewaretoken" value="[^"]*"')
STATES = {
    "empty": {},
    "ready": {"image": "page_images/x.png"},
    "generating": {"image_generating": True},
    "error": {"image_error": "Refused <b>by</b> policy"},
}


def render(source, user, *, wsgi=False, **context):
    factory = RequestFactory() if wsgi else AsyncRequestFactory()
    request = factory.get("/stories/1/?a=1&b=<x>")
    request.user = user
    template = Template("{% load i18n page_images %}" + source)
    return template.render(Context({"request": request, **context}))


def fragment(user, record):
    client = Client()
    client.force_login(user)
    return client.get("/page-images/fragment/", {"ref": sign_record(record)}).content.decode()


@pytest.mark.parametrize("state", list(STATES))
def test_the_tag_and_the_fragment_view_render_the_same_markup(editor, make_page, state):
    page = make_page(**STATES[state])
    tag = render("{% page_image p %}", editor, wsgi=True, p=page)  # as the test client's request
    view = fragment(editor, page)
    # Only the CSRF token and the page's own path (the view's is its own) may differ.
    next_value = re.compile(r'name="next" value="[^"]*"')
    assert next_value.sub("", CSRF.sub("", tag)) == next_value.sub("", CSRF.sub("", view))


def test_the_signed_reference_is_sign_records_and_opens_the_record(editor, make_page, settings):
    pages = [make_page(f"page {i}") for i in range(3)]
    html_ = render("{% for p in pages %}{% page_image p %}{% endfor %}", editor, pages=pages)
    refs = re.findall(r'name="ref" value="([^"]+)"', html_)
    assert refs == [sign_record(p) for p in pages]
    assert [load_record(ref) for ref in refs] == pages
    # A new key signs with the new key (and a page keeps one signer, built per request).
    settings.SECRET_KEY = "another-secret-key-for-this-test"
    refs = re.findall(
        r'name="ref" value="([^"]+)"', render("{% page_image p %}", editor, p=pages[0])
    )
    assert refs == [sign_record(pages[0])]
    assert load_record(refs[0]) == pages[0]


@pytest.mark.parametrize("value", ["testapp.page:1", "app.model:é ü <x>", ""])
def test_the_page_signer_signs_as_djangos_signer(value, settings):
    assert RecordSigner().sign(value) == signing.Signer(salt=SALT).sign(value)
    assert RecordSigner().unsign(signing.Signer(salt=SALT).sign(value)) == value
    old = RecordSigner().sign(value)
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a-new-secret", [settings.SECRET_KEY]
    assert RecordSigner().unsign(old) == value  # through the fallback key
    assert RecordSigner().sign(value) == signing.Signer(salt=SALT).sign(value) != old


def test_a_key_with_markup_is_escaped_quoted_and_keyed(editor, make_page):
    page = make_page()
    page.pk = '7"><script>alert(1)</script>&x'  # a text primary key, as some models have
    signed = sign_record(page)
    container = container_context(None, page, user=editor)
    html_ = render("{% page_image p %}", editor, p=page)
    assert "<script>" not in html_
    assert f'value="{html.escape(signed)}"' in html_
    assert f'hx-get="/page-images/fragment/?ref={quote(signed)}"' in html_
    assert f'id="page-images-{event_key(page.image_reference)}"' in html_
    assert str(container["key"]) == event_key(page.image_reference)


def test_a_prompt_with_markup_is_text(editor, make_page):
    markup = '<script>alert("x")</script>'
    page = make_page(markup, image="page_images/x.png", image_alt=markup)
    html_ = render("{% page_image p %}", editor, p=page)
    assert "<script>" not in html_
    assert 'alt="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"' in html_


def test_autoescape_around_the_tag_is_honoured_record_by_record(editor, make_page):
    page = make_page(image_error="Refused <b>by</b> policy")
    html_ = render(
        "{% page_image p %}{% autoescape off %}{% page_image p %}{% endautoescape %}"
        "{% page_image p %}",
        editor,
        p=page,
    )
    # As Django's own inclusion tags do: the included template inherits the setting.
    assert html_.count("Refused &lt;b&gt;by&lt;/b&gt; policy") == 2
    assert html_.count("Refused <b>by</b> policy") == 1
    assert html_.count('value="/stories/1/?a=1&amp;b=%3Cx%3E"') == 2


OWN_CONTAINER = (
    "[{{ state }}|{{ key }}|{{ alt }}|{{ state|upper }}|{{ missing }}|{{ poll_ms }}|"
    "{% if state == 'empty' %}{{ chip_label }}{% endif %}]"
)


def test_a_projects_own_templates_win(editor, make_page, settings):
    settings.TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "OPTIONS": {
                "loaders": [
                    (
                        "django.template.loaders.locmem.Loader",
                        {
                            "page_images/container.html": OWN_CONTAINER,
                            "card.html": "{% load page_images %}<li>{% page_image p %}</li>",
                        },
                    ),
                    "django.template.loaders.app_directories.Loader",
                ]
            },
        }
    ]
    ready = make_page("<b>fox</b>", image="page_images/x.png", image_alt="<b>fox</b>")
    empty = make_page(image_alt="A red fox jumps over a sleeping dog at dawn")
    html_ = render(
        "{% for p in pages %}{% include 'card.html' %}{% endfor %}", editor, pages=[ready, empty]
    )
    key = event_key(ready.image_reference)
    assert html_ == (
        f"<li>[ready|{key}|&lt;b&gt;fox&lt;/b&gt;|READY||None|]</li>"
        f"<li>[empty|{event_key(empty.image_reference)}|A red fox jumps over a sleeping dog at "
        "dawn|EMPTY||None|Generate image]</li>"
    )


def test_the_permission_is_asked_only_for_a_chip(
    editor, make_page, django_assert_num_queries, django_assert_max_num_queries
):
    ready = [make_page(image="page_images/x.png") for _ in range(5)]
    empty = [make_page() for _ in range(5)]
    source = "{% for p in pages %}{% page_image p %}{% endfor %}"
    with django_assert_num_queries(0):
        render(source, editor, pages=ready)
    with django_assert_max_num_queries(2):  # the user's permissions, once for the page
        html_ = render(source, editor, pages=empty)
    assert html_.count("Generate image") == 5


def test_a_urlconf_without_languages_is_seen_as_such(db):
    assert not _urls_follow_language()


def test_a_page_in_two_languages_gets_each_languages_urls(editor, make_page, settings):
    from django.conf.urls.i18n import i18n_patterns

    page = make_page()
    urlconf = type("urlconf", (), {})()
    urlconf.urlpatterns = i18n_patterns(path("page-images/", include("page_images.urls")))
    settings.ROOT_URLCONF = urlconf
    assert _urls_follow_language()
    html_ = render(
        "{% page_image p %}{% language 'fr' %}{% page_image p %}{% endlanguage %}"
        "{% page_image p %}",
        editor,
        p=page,
    )
    languages = ["en-us", "fr", "en-us"]
    fragments = re.findall(r'hx-get="([^"?]+)', html_)
    assert fragments == [f"/{language}/page-images/fragment/" for language in languages]
    triggers = re.findall(r'action="([^"]+)"', html_)
    assert triggers == [f"/{language}/page-images/generate/" for language in languages]


def test_a_translated_route_counts_as_following_the_language(settings):
    urlconf = type("urlconf", (), {})()
    urlconf.urlpatterns = [path(gettext_lazy("images/"), include("page_images.urls"))]
    settings.ROOT_URLCONF = urlconf
    assert _urls_follow_language()


def test_without_a_request_nothing_is_remembered_for_a_stream():
    from page_images.rendering import remember, rendered_references

    remember(None, "testapp.page:1")  # a tag rendered outside a request: nothing to attach to
    assert rendered_references(None) == []


def test_a_translated_route_inside_an_include_counts_too(settings):
    urlconf = type("urlconf", (), {})()
    inner = [path(gettext_lazy("images/"), include("page_images.urls"))]
    urlconf.urlpatterns = [path("site/", include(inner))]
    settings.ROOT_URLCONF = urlconf
    assert _urls_follow_language()


def test_can_generate_behaves_as_the_bool_it_stands_for(editor, reader, make_page):
    # A project's own container may print it, compare it, or use it as a key, not only test it.
    page = make_page()
    for user, expected in ((editor, True), (reader, False)):
        can = container_context(None, page, user=user)["can_generate"]
        assert (bool(can), can == expected, can != (not expected)) == (expected, True, True)
        assert (str(can), repr(can)) == (str(expected), repr(expected))
        assert {can: "yes"}[expected] == "yes"
    source = "{{ can_generate }} {% if can_generate == False %}read-only{% endif %}"
    assert Template(source).render(Context(container_context(None, page, user=reader))) == (
        "False read-only"
    )


def test_a_projects_own_template_keeps_djangos_lookups_for_every_other_variable(
    editor, make_page, settings
):
    # The fast path takes over only plain one-name variables; dotted lookups, literals and
    # translated strings are Django's, and render exactly as Django renders them.
    own = '[{{ state }}|{{ instance.image_text }}|{{ "<i>lit</i>" }}|{{ _("Cancel") }}|{{ 7 }}]'
    settings.TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "OPTIONS": {
                "loaders": [
                    ("django.template.loaders.locmem.Loader", {"page_images/container.html": own}),
                    "django.template.loaders.app_directories.Loader",
                ]
            },
        }
    ]
    page = make_page("<b>fox</b>")
    assert render("{% page_image p %}", editor, p=page) == (
        "[empty|&lt;b&gt;fox&lt;/b&gt;|<i>lit</i>|Cancel|7]"
    )


def test_a_generating_container_reserves_the_pictures_box_from_size(editor, make_page, settings):
    # The script sizes the container from this (page_images.js), so nothing moves when it lands.
    page = make_page(image_generating=True, image_claimed_at=timezone.now())
    assert 'data-page-images-box="256x256"' in render("{% page_image p %}", editor, p=page)
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "SIZE": "1536x1024"}
    settings.USE_THOUSAND_SEPARATOR = True  # never "1,536": a script reads these digits
    context = container_context(None, page, user=editor)
    assert (context["box_width"], context["box_height"]) == ("1536", "1024")
    assert 'data-page-images-box="1536x1024"' in render("{% page_image p %}", editor, p=page)


@pytest.mark.parametrize(
    "offered", [{"ASPECT_RATIOS": ["1:1", "3:2"]}, {"PRESETS": {"wide": {"size": "1536x1024"}}}]
)
def test_a_job_that_asked_for_its_own_shape_reserves_that_box(
    editor, make_page, settings, offered, django_assert_num_queries
):
    from django.contrib.contenttypes.models import ContentType

    from page_images.history import Generation

    token = uuid.uuid4()
    page = make_page(
        image_generating=True, image_claimed_at=timezone.now(), image_claim_token=token
    )
    row = Generation.objects.create(
        content_type=ContentType.objects.get_for_model(page),
        object_id=str(page.pk),
        token=token,
        prompt="p",
        size="1536x1024",
    )
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, **offered}
    container_context(None, page, user=editor)  # the editor's permissions, cached on the user
    with django_assert_num_queries(1):  # the job's row, found by its token
        context = container_context(None, page, user=editor)
    assert (context["box_width"], context["box_height"]) == ("1536", "1024")
    # A row without a size (or none at all): SIZE, as without shapes.
    Generation.objects.filter(pk=row.pk).update(size="")
    context = container_context(None, page, user=editor)
    assert (context["box_width"], context["box_height"]) == ("256", "256")


def test_without_shapes_a_generating_container_asks_no_history(
    editor, make_page, django_assert_num_queries
):
    page = make_page(
        image_generating=True, image_claimed_at=timezone.now(), image_claim_token=uuid.uuid4()
    )
    container_context(None, page, user=editor)  # the editor's permissions, cached on the user
    with django_assert_num_queries(0):
        context = container_context(None, page, user=editor)
    assert (context["box_width"], context["box_height"]) == ("256", "256")


def test_a_size_that_cannot_be_read_leaves_the_box_out_and_the_page_rendering(
    editor, make_page, settings
):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "SIZE": "huge"}  # check E004 says so
    page = make_page(image_generating=True, image_claimed_at=timezone.now())
    html_ = render("{% page_image p %}", editor, p=page)
    assert 'data-state="generating"' in html_
    assert "data-page-images-box" not in html_


@pytest.mark.parametrize("state", ["empty", "ready", "error"])
def test_only_a_generating_container_reserves_a_box_or_counts_the_wait(editor, make_page, state):
    context = container_context(None, make_page(**STATES[state]), user=editor)
    assert [context[name] for name in ("box_width", "box_height", "elapsed", "waiting_since")] == [
        None
    ] * 4


@pytest.mark.parametrize(
    ("field", "words"), [("image_started_at", "started"), ("image_claimed_at", "queued")]
)
def test_the_wait_is_rendered_for_the_script_to_count_on(editor, make_page, field, words):
    since = timezone.now() - timedelta(seconds=75)
    page = make_page(image_generating=True, **{field: since})
    html_ = render("{% page_image p %}", editor, p=page)
    (time_,) = re.findall(r"<time [^>]*>[^<]*</time>", html_)
    # The moment, for machines; the seconds the server saw, which the script counts on from (its
    # own clock may be set otherwise); the sentence with a place for the script's count; and the
    # server's own words for a page without the script.
    assert f'datetime="{since.isoformat(timespec="seconds")}"' in time_
    assert re.search(r'data-page-images-elapsed="7[56]"', time_)
    assert f'data-page-images-text="{words} {{since}} ago"' in time_
    assert f">{words} 1\xa0minute ago</time>" in time_


def test_a_clock_behind_the_record_counts_from_zero(editor, make_page):
    page = make_page(image_generating=True, image_started_at=timezone.now() + timedelta(seconds=30))
    assert container_context(None, page, user=editor)["elapsed"] == "0"


def test_the_chips_sparkle_is_an_svg_that_needs_no_emoji_font(editor, make_page):
    chip = render("{% page_image p %}", editor, p=make_page())
    (button,) = re.findall(r"<button[^>]*>.*?</button>", chip, re.S)
    assert re.search(r'<svg class="page-images-icon" aria-hidden="true" focusable="false"', button)
    assert 'fill="currentColor"' in button  # the button's own colour, high contrast included
    assert "</svg> Generate image<" in button
    assert "✨" not in chip
    # Cancel and Try again keep their words alone.
    for state in ("generating", "error"):
        html_ = render("{% page_image p %}", editor, p=make_page(**STATES[state]))
        assert "<svg" not in html_


def test_a_containers_words_are_said_by_the_pages_live_region_not_by_a_role_of_their_own(
    editor, make_page
):
    # A role="status" or "alert" inside a container is replaced with it, and may never be heard;
    # the page's one live region (page_images.js) says each change instead, once.
    for state in STATES:
        html_ = render("{% page_image p %}", editor, p=make_page(**STATES[state]))
        assert "role=" not in html_
    client = Client()
    client.force_login(editor)
    refused = client.get("/page-images/fragment/", {"ref": "testapp.page:1:forged"})
    assert refused.status_code == 400
    assert refused.content.decode().startswith('<div class="page-images page-images-refused">')
    stream = render("{% page_images_stream %}", editor)
    assert 'data-announce-ready="Image ready"' in stream
    assert 'data-announce-cancelled="Image generation cancelled"' in stream


@isolate_apps("tests.testapp")
def test_a_picture_gets_its_width_and_height_from_the_fields_that_store_them(editor):
    from django.db import models

    from page_images.models import ImageGeneratingMixin

    class Framed(ImageGeneratingMixin, models.Model):
        photo = models.ImageField(
            upload_to="framed", width_field="photo_width", height_field="photo_height"
        )
        photo_width = models.PositiveIntegerField(null=True)
        photo_height = models.PositiveIntegerField(null=True)

        caption = models.TextField()

        image_field_name = "photo"
        image_prompt_field = "caption"
        image_alt_text_field = "caption"

        class Meta:
            app_label = "testapp"

        def __str__(self) -> str:
            return self.caption

    # Read from the record's columns, never from the file (there is none here to open).
    framed = Framed(
        pk=1, caption="A fox", photo="framed/fox.png", photo_width=1536, photo_height=1024
    )
    html_ = render("{% page_image p %}", editor, p=framed)
    assert 'src="/media/framed/fox.png" alt="A fox" width="1536" height="1024">' in html_
    framed.photo_height = None  # one without the other would stretch the picture: neither
    assert 'alt="A fox">' in render("{% page_image p %}", editor, p=framed)


def test_a_picture_without_stored_dimensions_keeps_its_own_size(editor, make_page):
    page = make_page(image="page_images/x.png", image_alt="A red fox asleep")
    html_ = render("{% page_image p %}", editor, p=page)
    assert 'alt="A red fox asleep">' in html_


LABEL = '<span class="page-images-label">AI-generated</span>'


@pytest.mark.parametrize("user", ["editor", "reader"])
def test_the_ai_label_goes_with_the_picture_for_editors_and_visitors(
    user, make_page, settings, request
):
    viewer = request.getfixturevalue(user)
    settings.PAGE_IMAGES = {"AI_LABEL": True}
    ready = make_page(image="page_images/x.png")
    html_ = render("{% page_image p %}", viewer, p=ready)
    assert re.search(r'<img class="page-images-image" [^>]*>\s*' + re.escape(LABEL), html_)
    assert LABEL in fragment(viewer, ready)  # and so in what live refresh swaps in


@pytest.mark.parametrize("state", ["empty", "generating", "error"])
def test_the_ai_label_is_only_for_a_picture(editor, make_page, settings, state):
    settings.PAGE_IMAGES = {"AI_LABEL": True}
    assert LABEL not in render("{% page_image p %}", editor, p=make_page(**STATES[state]))


def test_the_ai_label_is_off_by_default(editor, make_page):
    ready = make_page(image="page_images/x.png")
    assert "page-images-label" not in render("{% page_image p %}", editor, p=ready)


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        ("http://testserver/stories/3/?tab=images", "/stories/3/?tab=images"),
        ("http://testserver/", "/"),
        # Not this site's page: the fragment's own address, which the trigger sends home.
        ("https://elsewhere.example/phish/", "/page-images/fragment/?ref="),
        ("", "/page-images/fragment/?ref="),
    ],
)
def test_a_fetched_container_sends_a_bare_form_back_to_the_page_htmx_names(
    editor, make_page, current, expected
):
    record = make_page("A lighthouse")
    client = Client()
    client.force_login(editor)
    headers = {"HX-Request": "true", "HX-Current-URL": current}
    html = client.get("/page-images/fragment/", {"ref": sign_record(record)}, headers=headers)
    found = re.search(r'name="next" value="([^"]*)"', html.content.decode())
    assert found is not None
    assert found.group(1).replace("&amp;", "&").startswith(expected)


def _running_with_preview(page, preview="page_images/testapp/page/p-preview-0.png", **fields):
    from page_images.history import Generation, content_type_of

    token = uuid.uuid4()
    page.image_generating = True
    page.image_claimed_at = page.image_started_at = timezone.now()
    page.image_claim_token = token
    for name, value in fields.items():
        setattr(page, name, value)
    page.save()
    Generation.objects.create(
        content_type=content_type_of(page),
        object_id=str(page.pk),
        token=token,
        prompt="p",
        status=Generation.Status.RUNNING,
        preview=preview,
    )
    return page


def test_a_running_jobs_preview_is_shown_blurred_and_marked_with_one_query(
    editor, make_page, configure, django_assert_num_queries
):
    configure(PREVIEWS=1)
    page = _running_with_preview(make_page())
    container_context(None, page, user=editor)  # the editor's permissions, cached on the user
    with django_assert_num_queries(1):  # the job's row, found by its token
        context = container_context(None, page, user=editor)
    assert context["preview_url"] == "/media/page_images/testapp/page/p-preview-0.png"
    markup = render("{% page_image p %}", editor, p=page)
    assert 'class="page-images page-images-generating page-images-previewing"' in markup
    assert (
        '<img class="page-images-preview" src="/media/page_images/testapp/page/p-preview-0.png" '
        'alt="Preview: a rough, blurred version of the image being generated">'
    ) in markup
    assert '<span class="page-images-preview-label" aria-hidden="true">Preview</span>' in markup
    # The wait and Cancel stay: a preview is not the picture.
    assert "Generating image…" in markup
    assert "Cancel" in markup


def test_the_preview_is_marked_in_the_editors_language(editor, make_page, configure):
    from django.utils import translation

    configure(PREVIEWS=1)
    page = _running_with_preview(make_page())
    with translation.override("de"):
        markup = render("{% page_image p %}", editor, p=page)
    assert ">Vorschau</span>" in markup
    assert 'alt="Vorschau: eine grobe, unscharfe Fassung des Bildes' in markup


def test_a_visitor_never_sees_a_preview(reader, make_page, configure):
    configure(PREVIEWS=1)
    page = _running_with_preview(make_page())
    assert "preview" not in render("{% page_image p %}", reader, p=page)


@pytest.mark.parametrize("case", ["off", "queued", "none yet"])
def test_no_preview_and_no_query_for_it_where_there_can_be_none(
    editor, make_page, configure, django_assert_num_queries, case
):
    configure(PREVIEWS=0 if case == "off" else 2)
    page = _running_with_preview(
        make_page(),
        preview="" if case == "none yet" else "page_images/x-preview-0.png",
        image_started_at=None if case == "queued" else timezone.now(),
    )
    container_context(None, page, user=editor)
    with django_assert_num_queries(1 if case == "none yet" else 0):
        context = container_context(None, page, user=editor)
    assert context["preview_url"] == ""
    assert "page-images-preview" not in render("{% page_image p %}", editor, p=page)


def test_a_job_without_a_history_row_shows_no_preview(editor, make_page, configure):
    configure(PREVIEWS=1)
    page = make_page(
        image_generating=True,
        image_claimed_at=timezone.now(),
        image_started_at=timezone.now(),
        image_claim_token=uuid.uuid4(),
    )
    assert container_context(None, page, user=editor)["preview_url"] == ""


def test_a_shaped_job_with_a_preview_gets_both_from_one_query(
    editor, make_page, configure, django_assert_num_queries
):
    from page_images.history import Generation

    configure(PREVIEWS=1, ASPECT_RATIOS=["1:1", "3:2"])
    page = _running_with_preview(make_page())
    Generation.objects.of(page).update(size="1536x1024")
    container_context(None, page, user=editor)
    with django_assert_num_queries(1):
        context = container_context(None, page, user=editor)
    assert (context["box_width"], context["box_height"]) == ("1536", "1024")
    assert context["preview_url"].endswith("p-preview-0.png")
