from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import AnonymousUser
from django.template import Context, Template, TemplateSyntaxError
from django.test import AsyncRequestFactory, RequestFactory
from django.utils import timezone

from page_images.live.tokens import unsign_references

pytestmark = pytest.mark.django_db


def render(source, user, *, wsgi=False, **context):
    factory = RequestFactory() if wsgi else AsyncRequestFactory()  # ASGI unless asked
    request = factory.get("/stories/1/")
    request.user = user
    template = Template("{% load page_images %}" + source)
    return template.render(Context({"request": request, **context})), request


def test_chip_for_an_editor_on_an_empty_record(editor, page):
    html, _ = render("{% page_image_chip page %}", editor, page=page)
    assert "Generate image" in html
    assert 'hx-target="this"' in html
    assert 'name="ref"' in html


@pytest.mark.parametrize("change", [{"image": "x.png"}, {"image_generating": True}])
def test_chip_hidden_when_there_is_an_image_or_a_job(editor, page, change):
    for key, value in change.items():
        setattr(page, key, value)
    html, _ = render("{% page_image_chip page %}", editor, page=page)
    assert "Generate image" not in html


def test_chip_hidden_without_permission(reader, page):
    assert "Generate image" not in render("{% page_image_chip page %}", reader, page=page)[0]
    assert (
        "Generate image" not in render("{% page_image_chip page %}", AnonymousUser(), page=page)[0]
    )


def test_container_states(editor, page):
    html, _ = render("{% page_image page %}", editor, page=page)
    assert 'data-state="empty"' in html
    assert "Generate image" in html
    page.image_generating, page.image_claimed_at = True, timezone.now()
    html, _ = render("{% page_image page %}", editor, page=page)
    assert 'data-state="generating"' in html
    assert "Generating image" in html
    assert "every" not in html, "with a stream, no polling"
    page.image_generating, page.image_error = False, "Refused"
    html, _ = render("{% page_image page %}", editor, page=page)
    assert "Refused" in html
    assert "Try again" in html
    page.image_error, page.image = "", "page_images/x.png"
    page.image_alt = "A red fox mid-leap over a dog asleep in the grass"
    html, _ = render("{% page_image page %}", editor, page=page)
    assert '<img class="page-images-image" src="/media/page_images/x.png" alt="A red fox' in html


def test_generating_container_polls_without_a_stream(editor, page, settings):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "EVENTS": None, "POLL_INTERVAL": 1.5}
    page.image_generating, page.image_claimed_at = True, timezone.now()
    html, _ = render("{% page_image page %}", editor, page=page)
    assert "every 1500ms" in html


def test_one_stream_for_every_record_on_the_page(editor, make_page):
    pages = [make_page(f"page {i}") for i in range(7)]
    html, _ = render(
        "{% for p in pages %}{% page_image p %}{% endfor %}{% page_images_stream %}",
        editor,
        pages=pages,
    )
    (url,) = re.findall(r'data-stream-url="([^"]+)"', html)
    token = url.split("refs=", 1)[1]
    assert sorted(unsign_references(token)) == sorted(p.image_reference for p in pages)
    assert html.count("<script") == 1


def test_pages_served_by_wsgi_poll_instead_of_streaming(editor, page):
    page.image_generating, page.image_claimed_at = True, timezone.now()
    html, _ = render("{% page_image page %}{% page_images_stream %}", editor, wsgi=True, page=page)
    assert "every 2000ms" in html
    assert "data-stream-url" not in html


def test_stream_without_records_or_bus(editor, page, settings):
    html, _ = render("{% page_images_stream %}", editor)
    assert "data-stream-url" not in html
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "EVENTS": None}
    html, _ = render("{% page_image page %}{% page_images_stream %}", editor, page=page)
    assert "data-stream-url" not in html
    assert "page_images.js" in html


def test_tags_refuse_other_objects(editor):
    with pytest.raises(TemplateSyntaxError, match="ImageGeneratingMixin"):
        render("{% page_image thing %}", editor, thing="nope")
