"""The generation spine's public functions, in one place for host code.

``from page_images.services import request_generation`` is what the README shows; the functions
themselves live where their idea does: the claim's state changes in :mod:`page_images.claims`,
queueing in :mod:`page_images.queueing`.
"""

from __future__ import annotations

from page_images.claims import (
    cancel,
    claim,
    fail_generation,
    notify,
    release_claim,
    release_stale_claims,
    set_image_and_notify,
    touch_claim,
)
from page_images.models import STALE_CLAIM_MESSAGE
from page_images.queueing import (
    ENQUEUE_FAILED_MESSAGE,
    request_generation,
    request_generations,
)

__all__ = [
    "ENQUEUE_FAILED_MESSAGE",
    "STALE_CLAIM_MESSAGE",
    "cancel",
    "claim",
    "fail_generation",
    "notify",
    "release_claim",
    "release_stale_claims",
    "request_generation",
    "request_generations",
    "set_image_and_notify",
    "touch_claim",
]
