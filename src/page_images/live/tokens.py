"""Stream tokens: the signed list of references one page's event stream may follow.

The signature is the stream's authorisation: the page that embedded it was rendered for this
user, and the stream reveals only "this reference changed", never content.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Final

from django.core import signing

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["SALT", "sign_references", "unsign_references"]

SALT: Final = "page_images.stream"


def sign_references(references: Iterable[str]) -> str:
    """A URL-safe token naming ``references``; sorted and deduplicated, so one page, one token."""
    return signing.dumps(sorted(set(references)), salt=SALT, compress=True)


def unsign_references(token: str) -> list[str]:
    """The references in ``token``; raises ``signing.BadSignature`` if it was tampered with."""
    try:
        value = signing.loads(token, salt=SALT)
    except (ValueError, zlib.error) as exc:
        # Genuinely signed, but around a payload sign_references never makes (base64, zlib or
        # JSON that does not decode): as unusable as a forged token, and answered the same way.
        raise signing.BadSignature("The token does not hold a list of references.") from exc
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise signing.BadSignature("The token does not hold a list of references.")
    return value
