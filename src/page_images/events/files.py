"""The file bus: crosses processes on one machine with no server at all.

It is the embedded default of the example project, where uvicorn and a Celery worker share a disk
and nothing else. Publishers append one JSON line per event with ``O_APPEND`` in a single write, so
lines from concurrent workers never interleave; listeners poll the file's size, which costs one
``open``/``fstat`` per poll and nothing while it is idle.

The file cannot grow forever, so a publisher that finds it past :attr:`FileBus.max_bytes` moves it
aside (``os.replace`` to ``events.log.1``) and starts a new one. A listener cannot know what was
appended to the old file after its last poll, nor whether two publishers raced over the rotation,
so whenever the file it follows is replaced or shrinks, it starts on the new one and yields RESYNC:
every rotation costs one re-read per tab, and no event is silently lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import TYPE_CHECKING

from django.core.checks import Error, Warning
from django.utils.translation import gettext

from page_images.events.base import RESYNC, EventBus

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from django.core.checks import CheckMessage

__all__ = ["FileBus"]

logger = logging.getLogger("page_images.events")

LOG_NAME = "events.log"


class FileBus(EventBus):
    """Appends to ``<path>/events.log``; listeners tail it from where it ended when they began."""

    supports_cross_process = True
    #: Seconds between two looks at the file: the latency of an event, at one stat per poll.
    poll_interval: float = 0.1
    #: Size past which a publisher starts a new file.
    max_bytes: int = 1024 * 1024

    def __init__(self, path: str) -> None:
        super().__init__(path=path)
        self.path = path

    @property
    def log_path(self) -> str:
        return os.path.join(self.path, LOG_NAME)

    def publish(self, reference: str) -> None:
        line = (json.dumps({"ref": reference}) + "\n").encode("utf-8")
        try:
            os.makedirs(self.path, exist_ok=True)
            self._rotate_if_full()
            fd = os.open(self.log_path, os.O_APPEND | os.O_CREAT | os.O_WRONLY, 0o666)
            try:
                os.write(fd, line)  # one small write with O_APPEND: never interleaved
            finally:
                os.close(fd)
        except OSError as exc:
            logger.warning("page_images: could not publish %s to %s: %s", reference, self.path, exc)

    def _rotate_if_full(self) -> None:
        try:
            if os.stat(self.log_path).st_size < self.max_bytes:
                return
            os.replace(self.log_path, self.log_path + ".1")
        except FileNotFoundError:
            pass  # no file yet, or another publisher rotated it first: either way, append anew

    async def listen(self) -> AsyncIterator[str]:
        os.makedirs(self.path, exist_ok=True)
        tail = _Tail(self.log_path)
        while True:
            await asyncio.sleep(self.poll_interval)
            for reference in tail.poll():
                yield reference

    def check(self) -> list[CheckMessage]:
        path = {"path": repr(self.path)}
        if not isinstance(self.path, str) or not self.path:
            message = gettext(
                "PAGE_IMAGES['EVENTS']['OPTIONS']['path'] must be a folder, not %(path)s."
            )
            return [Error(message % path, id="page_images.E044")]
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            message = gettext(
                "PAGE_IMAGES['EVENTS']['OPTIONS']['path'] = %(path)s is not a folder."
            )
            return [Error(message % path, id="page_images.E044")]
        if not os.path.isabs(self.path):
            return [
                Warning(
                    gettext("PAGE_IMAGES['EVENTS']['OPTIONS']['path'] = %(path)s is relative.")
                    % path,
                    hint=gettext(
                        "The web server and the Celery worker resolve it against their own "
                        "working folders and may never meet: use an absolute path."
                    ),
                    id="page_images.W040",
                )
            ]
        return []


class _Tail:
    """Where a listener is in the log: the file's inode and the offset after its last full line."""

    def __init__(self, log_path: str) -> None:
        self.log_path = log_path
        self.inode: int | None = None
        self.offset = 0
        # Start from the END: what was published before listening began is already in the
        # database that the stream's opening resync makes the browser read.
        try:
            stat = os.stat(log_path)
        except FileNotFoundError:
            return
        self.inode, self.offset = stat.st_ino, stat.st_size

    def poll(self) -> list[str]:
        """The events appended since the last poll, after RESYNC if the file was replaced."""
        events: list[str] = []
        try:
            file = open(self.log_path, "rb")  # noqa: SIM115  (closed below, after one read)
        except FileNotFoundError:
            if self.inode is not None:  # moved aside and not yet recreated: lines may be lost
                self.inode, self.offset = None, 0
                events.append(RESYNC)
            return events
        with file:
            stat = os.fstat(file.fileno())
            if self.inode is None:
                self.inode, self.offset = stat.st_ino, 0  # a file that began after we looked
            elif stat.st_ino != self.inode or stat.st_size < self.offset:
                self.inode, self.offset = stat.st_ino, 0
                events.append(RESYNC)
            if stat.st_size <= self.offset:
                return events
            file.seek(self.offset)
            data = file.read(stat.st_size - self.offset)
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next poll
        self.offset += end
        events += filter(None, map(_parse, data[:end].splitlines()))
        return events


def _parse(line: bytes) -> str | None:
    try:
        reference = json.loads(line)["ref"]
    except (ValueError, KeyError, TypeError):
        logger.debug("page_images: skipped a malformed event line %r", line[:200])
        return None
    return reference if isinstance(reference, str) else None
