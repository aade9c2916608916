"""Signals a site can hook into: generation started, succeeded, failed.

They are sent with ``sender`` = the model class. ``generation_started`` is sent in the web process
when a click claims the record (so ``user`` is known); the other two in the worker, when the
job ends.
Receivers run inside the job: keep them quick, and never raise (an exception would fail the job).
"""

from __future__ import annotations

from django.dispatch import Signal

#: kwargs: ``instance``, ``user`` (may be None), ``token``.
generation_started = Signal()

#: kwargs: ``instance`` (reloaded, with its new image), ``image`` (the GeneratedImage), ``token``.
generation_succeeded = Signal()

#: kwargs: ``pk``, ``instance`` (None when it could not be loaded), ``error`` (the exception),
#: ``message`` (what the editor sees), ``token``.
generation_failed = Signal()
