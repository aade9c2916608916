"""The signer of record references: one HMAC key derivation per page, not per record.

Apart from :mod:`page_images.references` (which also loads records, and so needs the models) so that
what signs or checks a reference without touching the database (the tags, the stream's token
view, ``page_images.asgi``) imports no model: ``page_images.asgi`` is imported by ``asgi.py``
files, some of them before Django is set up.
"""

from __future__ import annotations

from typing import Final

from django.core import signing
from django.utils.crypto import salted_hmac

__all__ = ["SALT", "RecordSigner"]

SALT: Final = "page_images.record"


class RecordSigner(signing.Signer):
    """The signer of record references, whose HMAC key is derived once rather than once per value.

    The signatures are ``Signer(salt=SALT)``'s own, byte for byte: ``signature`` is
    ``signing.base64_hmac(salt + "signer", value, key)``, but the key derivation inside
    ``salted_hmac`` (a hash of the secret) is done once per signer and the keyed HMAC copied for
    each value, so a page signs its hundreds of records with one signer. Any other key (a
    fallback, when unsigning) goes Django's way.
    """

    def __init__(self) -> None:
        super().__init__(salt=SALT)
        self._keyed = salted_hmac(SALT + "signer", b"", self.key, algorithm=self.algorithm)

    def signature(self, value: str | bytes, key: str | bytes | None = None) -> str:
        if key is not None and key != self.key:
            return super().signature(value, key)
        mac = self._keyed.copy()
        mac.update(value.encode() if isinstance(value, str) else value)
        return signing.b64_encode(mac.digest()).decode()
