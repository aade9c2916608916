"""Signals a site can hook into: generation started, succeeded, failed.

They are sent with ``sender`` = the model class. ``generation_started`` is sent in the web process
when a click claims the record (so ``user`` is known); the other two in the worker, when the
job ends.

Receivers run inside the click or the job: keep them quick. A receiver that raises is logged (on
the ``page_images.signals`` logger, with its traceback) and changes nothing else: the job still
queues, the picture is still stored and announced, the failure is still recorded. A host's own
post-processing failing must never leave a record claimed or a page spinning.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger(__name__)

#: kwargs: ``instance``, ``user`` (may be None), ``token``.
generation_started = Signal()

#: kwargs: ``instance`` (reloaded, with its new image), ``image`` (the GeneratedImage), ``token``.
generation_succeeded = Signal()

#: kwargs: ``pk``, ``instance`` (None when it could not be loaded), ``error`` (the exception),
#: ``message`` (what the editor sees), ``token``.
generation_failed = Signal()


def send(signal: Signal, sender: type[Any], **kwargs: Any) -> None:
    """Send ``signal`` to every receiver; a receiver that raises is logged, never propagated."""
    for receiver, result in signal.send_robust(sender=sender, **kwargs):
        if isinstance(result, Exception):
            logger.error(
                "The page_images signal receiver %s raised; the generation goes on",
                getattr(receiver, "__qualname__", repr(receiver)),
                exc_info=result,
            )
