"""Editors' sentences that outlive the request: stored in English, shown in the reader's language.

A job fails in a worker, where no request says which language the editor reads; the record keeps
the sentence (``image_error``) until someone looks, perhaps in another language than the last
person who looked. So what a job or a queue stores is the sentence's English source, marked with
``gettext_noop`` where it is written (``makemessages`` finds it there), and it is translated here
when it is shown, in the language of the page that shows it. A sentence the catalogs do not know (a
site's own backend's message, or one written before an upgrade reworded it) is shown as stored.

Some sentences carry words of their own after a fixed opening: the provider's reason for a refusal.
The opening is translated and the provider's words are kept as the provider wrote them.
"""

from __future__ import annotations

from django.utils.translation import gettext, gettext_noop

#: The opening of a refusal under the provider's content policy; the provider's reason follows.
CONTENT_POLICY_REFUSAL = gettext_noop(
    "The image service refused this text under its content policy:"
)

#: The openings that a stored sentence may carry words of its own after (one space between).
OPENINGS = (CONTENT_POLICY_REFUSAL,)


def with_reason(opening: str, reason: str) -> str:
    """The stored form of ``opening`` (one of :data:`OPENINGS`) followed by words not translated."""
    return f"{opening} {reason}"


def shown(message: str) -> str:
    """``message``, a stored English sentence, in the active language (as stored when unknown)."""
    if not message:
        return message
    for opening in OPENINGS:
        if message.startswith(opening + " "):
            return f"{gettext(opening)} {message[len(opening) + 1 :]}"
    return gettext(message)
