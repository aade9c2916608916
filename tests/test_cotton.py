"""The django-cotton components render exactly what the template tags render.

Each state of a record is drawn twice for the same user and request path, by a site template of
tags and by one of components (tests/testapp/templates/testapp/), on an engine set up as cotton's
docs say for a manual set-up (its loader first, its tags built in). The two pages must be equal
byte for byte, but for the two values that are random on every render: the CSRF token's mask and
the stream token's signature, which are compared by what they carry instead.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import AnonymousUser
from django.middleware.csrf import _unmask_cipher_token
from django.template.loader import render_to_string
from django.test import AsyncRequestFactory, RequestFactory
from django.utils import timezone

from page_images.live.tokens import unsign_references
from tests.support.jobs import with_picture

pytestmark = pytest.mark.django_db

#: The same page twice: {% page_image_chip page %}… and <c-page-images.chip :record="page" />…
TAGS, COMPONENTS = "testapp/tags_page.html", "testapp/cotton_page.html"
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
SECRET = "s" * 32
STREAM = re.compile(r"refs=([^\"&]+)")


@pytest.fixture(autouse=True)
def cotton_site(settings):
    """The site's one template engine, with cotton's loader and tags (django_cotton's own
    AppConfig writes the same into TEMPLATES at start-up)."""
    settings.TEMPLATES = [
        {
            **settings.TEMPLATES[0],
            "APP_DIRS": False,
            "OPTIONS": {
                **settings.TEMPLATES[0]["OPTIONS"],
                "loaders": [
                    (
                        "django.template.loaders.cached.Loader",
                        [
                            "django_cotton.cotton_loader.Loader",
                            "django.template.loaders.app_directories.Loader",
                        ],
                    )
                ],
                "builtins": ["django_cotton.templatetags.cotton"],
            },
        }
    ]


def _draw(template: str, user, *, asgi: bool, **context) -> str:
    factory = AsyncRequestFactory() if asgi else RequestFactory()
    request = factory.get("/stories/1/")
    request.user = user
    request.META["CSRF_COOKIE"] = SECRET  # one session's secret: its tokens differ by mask only
    return render_to_string(template, context, request)


def _comparable(html: str) -> str:
    html = CSRF.sub(lambda m: f'name="csrfmiddlewaretoken" value="{_unmask(m[1])}"', html)
    return STREAM.sub(lambda m: "refs=" + ",".join(unsign_references(m[1])), html)


def _unmask(token: str) -> str:
    return _unmask_cipher_token(token) if len(token) == 64 else token


def _both(user, page, *, asgi: bool = True) -> tuple[str, str]:
    return _comparable(_draw(TAGS, user, asgi=asgi, page=page)), _comparable(
        _draw(COMPONENTS, user, asgi=asgi, page=page)
    )


def _generating(page):
    page.image_generating, page.image_claimed_at = True, timezone.now()


def _failed(page):
    page.image_error = "Refused by the provider"


def _pictured(page):
    with_picture(page)
    page.refresh_from_db()


STATES = {
    "empty": lambda page: None,
    "generating": _generating,
    "error": _failed,
    "ready": _pictured,
}


@pytest.fixture(params=[False, True], ids=["cotton-default", "cotton-isolated"])
def isolation(request, settings):
    """Both of cotton's context modes: the parent's context pushed, or isolated (its context
    processors kept: the request and the CSRF token the tags need)."""
    settings.COTTON_ISOLATE_BY_DEFAULT = request.param


@pytest.mark.parametrize("state", list(STATES))
@pytest.mark.parametrize("who", ["editor", "reader", "visitor"])
def test_each_component_equals_its_tag(request, page, state, who, isolation):
    user = AnonymousUser() if who == "visitor" else request.getfixturevalue(who)
    STATES[state](page)
    tags, components = _both(user, page)
    assert components == tags
    if who == "editor" and state == "empty":  # what the comparison covers, for the record
        assert "Generate image" in tags
        assert "data-stream-url" in tags
        assert 'name="csrfmiddlewaretoken" value="' in tags
    if who == "visitor" and state != "ready":
        assert "site-placeholder" in tags  # the fallback, through the component's attribute


def test_a_page_served_by_wsgi_polls_in_both(editor, page, isolation):
    _generating(page)
    tags, components = _both(editor, page, asgi=False)
    assert components == tags
    assert "every 2000ms" in tags


def test_the_site_template_holds_components_not_tags():
    # What the comparison rests on: cotton's loader compiled the site's file, so the components
    # (and not a copy of the tags) drew the second page.
    from django.template.loader import get_template

    source = get_template(COMPONENTS).template.source
    assert "{% page_image" not in source
    compiled = get_template(COMPONENTS).template.nodelist
    assert any(type(node).__name__ == "CottonComponentNode" for node in compiled)
