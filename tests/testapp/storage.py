"""A storage that fails the way a full disk does, for the fault suite.

It goes through Django's own ``FileSystemStorage._save``, which writes the first chunk to a real
file and then meets ``ENOSPC``: exactly what leaves a half-written file behind on a real server.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from django.core.files.storage import FileSystemStorage

if TYPE_CHECKING:
    from collections.abc import Iterator


class _FillsTheDisk:
    def __init__(self, content: Any) -> None:
        self.content = content
        self.name = content.name

    def chunks(self, chunk_size: int | None = None) -> Iterator[bytes]:
        data = b"".join(self.content.chunks())
        yield data[: len(data) // 2]
        raise OSError(errno.ENOSPC, "No space left on device")


class DiskFullStorage(FileSystemStorage):
    def _save(self, name: str, content: Any) -> str:
        return super()._save(name, _FillsTheDisk(content))
