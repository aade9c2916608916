"""The errors of django-page-images.

Two families, kept apart on purpose. Configuration errors subclass Django's
``ImproperlyConfigured`` so that no ``except PageImagesError`` in a job ever swallows a broken
setup. Runtime errors subclass :class:`PageImagesError`; among them,
:class:`GenerationError` carries ``user_message``, the sentence an editor sees on the record,
and says by its class whether trying again can help (:class:`TransientGenerationError`, retried
by the task) or not (:class:`PermanentGenerationError`, shown at once).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext, gettext_noop


class TranslatableError(Exception):
    """An error whose message is an English sentence that a system check shows translated.

    The exception itself says it in English: it may be raised while a module is imported, before
    Django can load a catalog, and it is read in tracebacks and logs. The sentence is marked with
    ``gettext_noop`` where it is written, values go in by name (``%(path)s``), and
    :meth:`translated` says it in the active language when a check reports it.
    """

    def __init__(self, message: str, values: dict[str, Any] | None = None) -> None:
        self.message = message
        self.values = values or {}
        super().__init__(message % self.values if self.values else message)

    def translated(self) -> str:
        """The message in the active language (as written when the catalogs do not know it)."""
        text = gettext(self.message)
        return text % self.values if self.values else text


class PageImagesConfigurationError(TranslatableError, ImproperlyConfigured):
    """A setting, a backend path or a model declaration is wrong; the message names what to fix."""


class InvalidSettingValueError(TranslatableError, ValueError):
    """A value of a setting (a size, a ratio, a rate) that cannot be read; the message says why."""


#: The sentence of :class:`MissingDependencyError`.
MISSING_DEPENDENCY = gettext_noop(
    '%(package)s is not installed. Install it with: pip install "django-page-images[%(extra)s]"'
)


class MissingDependencyError(PageImagesConfigurationError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(MISSING_DEPENDENCY, {"package": package, "extra": extra})


class PageImagesError(Exception):
    """Base of every runtime error raised by django-page-images."""


#: What an editor reads when the record has no text to draw from.
NO_TEXT = gettext_noop("There is no text to make a picture from.")


class EmptyPromptError(PageImagesError, ValueError):
    """The record has no text to make a picture from; nothing is sent to a provider."""

    def __init__(self, message: str = NO_TEXT) -> None:
        super().__init__(message)


class InvalidChoiceError(PageImagesError, ValueError):
    """An editor's choice (a preset, an aspect ratio, a prompt) the site does not accept now;
    the message says what to do. Nothing is claimed or queued."""


class UnsupportedAspectRatioError(PageImagesError, ValueError):
    """The backend's provider cannot draw this aspect ratio; the message says which it can."""


class QuotaExceededError(PageImagesError):
    """A quota (``PAGE_IMAGES["QUOTAS"]``) has no room for this request; nothing was claimed.

    ``user_message`` is the editor's sentence ("You have used today's 20 images. More
    tomorrow."), translated; ``status`` is the quota's state when it was checked.
    """

    def __init__(self, user_message: str, status: object = None) -> None:
        self.user_message = user_message
        self.status = status
        super().__init__(user_message)


class EnqueueError(PageImagesError):
    """The job could not be handed to the broker; the claim was released and may be retried."""


class StaleClaimError(PageImagesError):
    """A job tried to write to a record whose claim it no longer holds; nothing was written."""


class GenerationError(PageImagesError):
    """A generation failed; ``user_message`` is safe and useful to show to an editor.

    ``user_message`` is the sentence's English source, as the catalogs know it (marked with
    ``gettext_noop`` where it is written): it is stored on the record and translated where it is
    shown, in the reader's language (:func:`page_images.wording.shown`).
    """

    #: Shown when the raiser gives no message of its own.
    default_message = gettext_noop("The image could not be generated.")

    def __init__(self, user_message: str | None = None, *, detail: str = "") -> None:
        self.user_message = user_message or self.default_message
        #: What an operator needs (provider text, status); logged, not shown to editors.
        self.detail = detail
        super().__init__(self.user_message if not detail else f"{self.user_message} ({detail})")


class TransientGenerationError(GenerationError):
    """Trying again later may succeed: rate limits, timeouts, 5xx answers, dropped connections."""

    default_message = gettext_noop(
        "The image service is busy or unreachable. Try again in a moment."
    )

    def __init__(
        self, user_message: str | None = None, *, detail: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(user_message, detail=detail)
        #: Seconds the provider asked for before the next call (its ``Retry-After``), if it said.
        self.retry_after = retry_after


class PermanentGenerationError(GenerationError):
    """Trying again with the same input will fail the same way; the task does not retry."""


class ContentPolicyError(PermanentGenerationError):
    """The provider refused the prompt under its content policy."""

    default_message = gettext_noop(
        "The image service refused this text under its content policy. Edit the text and try again."
    )


class ProviderAuthenticationError(PermanentGenerationError):
    """The provider rejected the credentials: the API key is missing, wrong or lacks access."""

    default_message = gettext_noop(
        "The image service rejected the API key. Ask the site's administrator to check it."
    )


class InvalidImageError(PermanentGenerationError):
    """The bytes that came back are not an acceptable image (corrupt, too big, wrong type)."""

    default_message = gettext_noop(
        "The image service sent back something that is not a usable image."
    )


class StorageWriteError(PermanentGenerationError):
    """The picture was made but the storage refused it (disk full, permissions, a bucket error).

    Not retried by the task: a retry would pay the provider again for a picture that may meet the
    same full disk. The editor's next click starts afresh.
    """

    default_message = gettext_noop("The picture was made but could not be saved. Try again.")


class GenerationTimeoutError(TransientGenerationError):
    """The provider or the download did not finish within its deadline."""

    default_message = gettext_noop("The image service took too long to answer. Try again.")


class PromptChangedError(TransientGenerationError):
    """The record's text changed while its picture was being made: the picture no longer fits.

    Transient, so the task makes the picture again from the new text (within ``MAX_RETRIES``).
    """

    default_message = gettext_noop("The text changed while the picture was being made. Try again.")
