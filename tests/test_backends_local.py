from __future__ import annotations

import io
import time

import pytest
from PIL import Image

from page_images.backends.base import ContentPolicyError, ImageRequest
from page_images.backends.local import LocalBackend, paint


def test_paints_a_real_png_of_the_asked_size():
    result = LocalBackend().generate(ImageRequest("A lighthouse", width=320, height=200))
    assert result.content_type == "image/png"
    with Image.open(io.BytesIO(result.content)) as picture:
        assert (picture.format, picture.size) == ("PNG", (320, 200))


def test_same_prompt_same_picture_other_prompt_other_picture():
    assert paint("a fox", 64, 64) == paint("a fox", 64, 64)
    assert paint("a fox", 64, 64) != paint("a hen", 64, 64)


def test_delay_shows_the_waiting_state():
    started = time.monotonic()
    LocalBackend(delay=0.3).generate(ImageRequest("x", width=32, height=32))
    assert time.monotonic() - started >= 0.3


def test_refuse_words_behave_like_a_content_policy():
    backend = LocalBackend(refuse_words=["Forbidden"])
    with pytest.raises(ContentPolicyError) as caught:
        backend.generate(ImageRequest("A forbidden castle", width=32, height=32))
    assert "content policy" in caught.value.user_message


def test_unknown_options_are_reported():
    (message,) = LocalBackend(colour="red").check()
    assert message.id == "page_images.E030"
    assert LocalBackend(delay=1).check() == []


def test_an_empty_prompt_gets_a_picture_without_a_caption():
    result = LocalBackend().generate(ImageRequest("", width=64, height=48))
    with Image.open(io.BytesIO(result.content)) as picture:
        assert (picture.format, picture.size) == ("PNG", (64, 48))
    assert result.content != LocalBackend().generate(ImageRequest("x", width=64, height=48)).content


def test_a_backend_has_no_check_messages_unless_it_says_so():
    from page_images.backends.base import BaseBackend, GeneratedImage

    class Minimal(BaseBackend):
        def generate(self, request: ImageRequest) -> GeneratedImage:
            raise NotImplementedError

    assert Minimal().check() == []
