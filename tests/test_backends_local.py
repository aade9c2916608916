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


def test_each_variant_is_its_own_picture_and_the_first_is_the_prompts_own():
    pictures = LocalBackend().generate_variants(ImageRequest("A fox", width=64, height=64, n=3))
    contents = [picture.content for picture in pictures]
    assert len(set(contents)) == 3
    assert contents[0] == paint("A fox", 64, 64)
    assert paint("A fox", 64, 64, variant=2) == contents[2]


@pytest.mark.parametrize(
    ("ratio", "size", "expected"),
    [
        ("1:1", (1024, 1024), (1024, 1024)),
        ("3:2", (1024, 1024), (1280, 832)),
        ("2:3", (1024, 1024), (832, 1280)),
        ("16:9", (1024, 1024), (1344, 768)),
        ("1:1", (70, 70), (64, 64)),  # sides are multiples of 64
        ("16:9", (64, 64), (128, 64)),  # never below 64, and still wider than tall
        ("20:1", (64, 64), (1280, 64)),  # the shape kept where the area cannot be
        ("1:20", (8192, 8192), (384, 8192)),  # nor above 8192
        ("200:1", (64, 64), (8192, 64)),  # beyond what both bounds allow: the nearest
    ],
)
def test_the_default_size_for_a_ratio_keeps_the_area_in_sides_of_64(ratio, size, expected):
    assert LocalBackend().size_for(ratio, size) == expected


def test_the_default_size_for_refuses_a_malformed_ratio():
    with pytest.raises(ValueError, match="not an aspect ratio"):
        LocalBackend().size_for("wide", (64, 64))


def test_a_backend_that_cannot_stream_sends_no_previews_and_the_picture():
    from page_images.backends.base import BaseBackend, GeneratedImage

    class Plain(BaseBackend):
        def generate(self, request: ImageRequest) -> GeneratedImage:
            return GeneratedImage(content=b"picture", model="plain")

    previews: list[object] = []
    result = Plain().generate_with_previews(ImageRequest("x"), previews.append, partials=3)
    assert (result.content, previews) == (b"picture", [])


def _pixels(content: bytes) -> int:
    """How many distinct colours: a coarse version has far fewer than the picture."""
    with Image.open(io.BytesIO(content)) as picture:
        return len(picture.convert("RGB").getcolors(1 << 20) or [])


@pytest.mark.parametrize("partials", [1, 2, 3])
def test_previews_are_coarse_versions_spread_over_the_delay(partials):
    request = ImageRequest("A lighthouse at dusk", width=256, height=160)
    seen: list[tuple[float, object]] = []
    started = time.monotonic()

    def keep(preview: object) -> None:
        seen.append((time.monotonic() - started, preview))

    result = LocalBackend(delay=0.4).generate_with_previews(request, keep, partials=partials)
    total = time.monotonic() - started
    assert [preview.index for _, preview in seen] == list(range(partials))
    step = 0.4 / (partials + 1)
    for index, (at, _) in enumerate(seen):
        assert at >= step * (index + 1) - 0.01
    assert total >= 0.4 - 0.01
    assert result.content == paint(request.prompt, 256, 160)
    colours = [_pixels(preview.content) for _, preview in seen]
    assert colours == sorted(colours)  # each preview finer than the last
    assert colours[-1] < _pixels(result.content)
    for _, preview in seen:
        assert preview.content_type == "image/png"
        with Image.open(io.BytesIO(preview.content)) as picture:
            assert picture.size == (256, 160)


def test_no_previews_asked_is_the_plain_picture():
    request = ImageRequest("A fox", width=64, height=64)
    previews: list[object] = []
    result = LocalBackend().generate_with_previews(request, previews.append, partials=0)
    assert (result.content, previews) == (paint("A fox", 64, 64), [])


def test_a_refused_prompt_is_refused_before_any_preview():
    previews: list[object] = []
    backend = LocalBackend(refuse_words=["forbidden"])
    with pytest.raises(ContentPolicyError):
        backend.generate_with_previews(
            ImageRequest("A forbidden fox", width=64, height=64), previews.append, partials=2
        )
    assert previews == []
