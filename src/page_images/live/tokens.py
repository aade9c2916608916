"""Stream tokens: the signed list of references one page's event stream may follow.

The signature is the stream's authorisation, and it is checked without a database or session
query (a stream may reconnect thousands of times at once after a deploy). So a token carries its
own limits: it is bound to the session cookie the page was rendered for (a copied URL, or the same
URL after logout, opens nothing: logging out changes the session key), and it expires after
``STREAM_MAX_AGE`` seconds, after which the page's containers poll. The stream reveals only "this
reference changed", never content.
"""

from __future__ import annotations

import zlib
from datetime import timedelta
from typing import TYPE_CHECKING, Final

from django.core import signing
from django.utils.crypto import constant_time_compare, salted_hmac

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["SALT", "WrongSession", "session_binding", "sign_references", "unsign_references"]

SALT: Final = "page_images.stream"


class WrongSession(signing.BadSignature):
    """A genuine token, made for a page of another session (copied, or used after logout)."""


def session_binding(session_key: str | None) -> str:
    """What a token remembers of a session key: a keyed hash, never the key itself.

    A page rendered without a session (none exists yet) is bound to nothing, and such a token
    opens a stream for any holder until it expires: it can only name records the page showed.
    """
    if not session_key:
        return ""
    return salted_hmac(SALT + ".session", session_key, algorithm="sha256").hexdigest()[:24]


def sign_references(references: Iterable[str], *, session_key: str | None = None) -> str:
    """A URL-safe token naming ``references``, bound to ``session_key``; one page, one token."""
    payload = {"r": sorted(set(references)), "b": session_binding(session_key)}
    return signing.dumps(payload, salt=SALT, compress=True)


def unsign_references(
    token: str, *, session_key: str | None = None, max_age: float | None = None
) -> list[str]:
    """The references in ``token``; ``signing.BadSignature`` if it was tampered with, made for
    another session (:class:`WrongSession`), or is older than ``max_age`` seconds
    (``signing.SignatureExpired``)."""
    try:
        value = signing.loads(
            token, salt=SALT, max_age=None if max_age is None else timedelta(seconds=max_age)
        )
    except (ValueError, zlib.error) as exc:
        # Genuinely signed, but around a payload sign_references never makes (base64, zlib or
        # JSON that does not decode): as unusable as a forged token, and answered the same way.
        raise signing.BadSignature("The token does not hold a list of references.") from exc
    if not isinstance(value, dict):
        raise signing.BadSignature("The token does not hold a list of references.")
    references, bound = value.get("r"), value.get("b")
    if not isinstance(references, list) or not all(isinstance(r, str) for r in references):
        raise signing.BadSignature("The token does not hold a list of references.")
    if not isinstance(bound, str):
        raise signing.BadSignature("The token does not hold a list of references.")
    if bound and not constant_time_compare(bound, session_binding(session_key)):
        raise WrongSession("The token was made for another session.")
    return references
