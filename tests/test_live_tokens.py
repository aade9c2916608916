"""Stream tokens: bound to the session their page was rendered for, expiring, and capped."""

from __future__ import annotations

import asyncio

import pytest
from django.core import signing

from page_images.live.hub import get_hub
from page_images.live.stream import StreamRefused, stream_references
from page_images.live.tokens import (
    WrongSession,
    session_binding,
    sign_references,
    unsign_references,
)
from tests.reliability import case

PAGES = ["testapp.page:1", "testapp.page:2"]


def test_a_token_opens_only_for_its_own_session():
    token = sign_references(PAGES, session_key="alice-session")
    assert unsign_references(token, session_key="alice-session") == PAGES
    for other in ("bob-session", None, ""):
        with pytest.raises(WrongSession):
            unsign_references(token, session_key=other)


def test_a_page_rendered_without_a_session_is_bound_to_nothing():
    token = sign_references(PAGES)
    assert unsign_references(token, session_key="anyone") == PAGES


def test_the_binding_is_a_keyed_hash_not_the_session_key():
    token = sign_references(PAGES, session_key="alice-session")
    assert "alice-session" not in signing.loads(token, salt="page_images.stream")["b"]
    assert session_binding("alice-session") != session_binding("bob-session")
    assert session_binding(None) == session_binding("") == ""


def test_an_old_token_has_expired():
    token = sign_references(PAGES, session_key="s")
    with pytest.raises(signing.SignatureExpired):
        unsign_references(token, session_key="s", max_age=-1)


def refused(*args):
    async def attempt():
        return stream_references(*args)

    with pytest.raises(StreamRefused) as caught:
        asyncio.run(attempt())
    return caught.value.status, caught.value.message


@case(
    "events",
    "A stream URL used by another session, after logout, or past STREAM_MAX_AGE",
    "403; the page falls back to polling.",
)
def test_the_stream_refuses_another_session_and_an_expired_token(settings):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "STREAM_MAX_AGE": 3600}
    token = sign_references(PAGES, session_key="alice")
    assert refused("GET", token, "bob") == (403, "This stream belongs to another session.")
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "STREAM_MAX_AGE": 0.000001}
    status, message = refused("GET", sign_references(PAGES, session_key="alice"), "alice")
    assert (status, "expired" in message) == (403, True)


@case(
    "events",
    "One session opens more streams than STREAMS_PER_SESSION",
    "429 past the cap; the cap frees as streams close.",
)
def test_one_session_holds_a_bounded_number_of_streams(settings):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "STREAMS_PER_SESSION": 3}
    token = sign_references(PAGES, session_key="alice")

    async def scenario():
        hub = get_hub()
        owner = session_binding("alice")
        subscriptions = [hub.subscription(PAGES, owner) for _ in range(3)]
        for subscription in subscriptions:
            await subscription.__aenter__()
        try:
            with pytest.raises(StreamRefused) as caught:
                stream_references("GET", token, "alice")
            assert caught.value.status == 429
            assert stream_references("GET", sign_references(PAGES, session_key="bob"), "bob")
        finally:
            for subscription in subscriptions:
                await subscription.__aexit__(None, None, None)
        assert hub.streams_of(owner) == 0
        assert stream_references("GET", token, "alice") == (PAGES, owner)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "payload",
    [
        ["testapp.page:1"],
        {"r": "testapp.page:1", "b": ""},
        {"r": [1], "b": ""},
        {"r": PAGES},
        {"r": PAGES, "b": None},
        {"r": PAGES, "b": 7},
    ],
    ids=["a list", "r not a list", "r not text", "no binding", "binding null", "binding a number"],
)
def test_a_genuinely_signed_payload_of_another_shape_is_a_bad_signature(payload):
    # Signed with the site's key and the stream's salt, but not by sign_references (an older
    # release's token, say): refused like a forged one, never a 500 nor a stream bound to nobody.
    token = signing.dumps(payload, salt="page_images.stream", compress=True)
    with pytest.raises(signing.BadSignature, match="does not hold a list of references"):
        unsign_references(token, session_key="alice")
