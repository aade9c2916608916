"""Issue 11's intake and provider cases; folded into their modules' tests after the merge."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from page_images.exceptions import InvalidImageError, TransientGenerationError
from page_images.intake import TOO_MANY_PIXELS, validate_image
from page_images.testing import Respond


def animated_png(frames: int, size: int = 100) -> bytes:
    pictures = [Image.new("RGB", (size, size), (n * 8 % 256, 0, 0)) for n in range(frames)]
    out = io.BytesIO()
    pictures[0].save(out, format="PNG", save_all=True, append_images=pictures[1:])
    return out.getvalue()


def test_every_frame_of_an_animation_counts_against_max_pixels():
    assert validate_image(animated_png(1), max_pixels=100_000).width == 100
    with pytest.raises(InvalidImageError) as caught:
        validate_image(animated_png(30), max_pixels=100_000)
    assert caught.value.user_message == TOO_MANY_PIXELS
    assert "100x100 x 30 frames > MAX_PIXELS 100000" in caught.value.detail


@pytest.mark.django_db
def test_the_rate_limit_message_does_not_promise_a_retry(provider, litellm_settings):
    # Editors read it only once the job has given up: "the job will try again" would be a lie.
    from page_images.backends import get_backend
    from page_images.backends.base import ImageRequest

    provider.push(Respond.rate_limited())
    with pytest.raises(TransientGenerationError) as caught:
        get_backend().generate(ImageRequest(prompt="a fox", width=64, height=64))
    assert "will try again" not in caught.value.user_message
    assert "Try again" in caught.value.user_message
