"""The event-bus interface: "this reference changed", from any process to the event streams.

An event carries a reference and nothing else. The database is the truth, so an event that is
lost can only delay a refresh, never show a wrong picture; what must never happen is a spinner
left turning because a change went by unseen. That is what :data:`RESYNC` answers: a bus that may
have missed events (its upstream dropped and came back, its file was rotated) says so, and every
listener re-reads what it shows.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from django.core.checks import CheckMessage

__all__ = ["RESYNC", "EventBus"]

#: Yielded by :meth:`EventBus.listen` when events may have been missed: listeners must resync.
#: Not a valid reference (those are ``"<app_label>.<model_name>:<pk>"``), so it cannot collide.
RESYNC: Final = "__resync__"


class EventBus(ABC):
    """Subclass this and name the class in ``PAGE_IMAGES["EVENTS"]["BACKEND"]``.

    The constructor takes ``PAGE_IMAGES["EVENTS"]["OPTIONS"]`` as keyword arguments. Like a
    backend's, it must do no I/O: the web process builds the bus for its system checks.
    """

    #: publish() in one process reaches listen() in another (a Celery worker and the web server).
    supports_cross_process: bool = False

    def __init__(self, **options: Any) -> None:
        self.options = options

    @abstractmethod
    def publish(self, reference: str) -> None:
        """Announce that ``reference`` changed.

        Called from Celery workers and request threads, so it is synchronous, safe from any thread
        or process, and bounded in time: a bus that is down must cost the caller a logged warning
        and a moment, never a failed or hanging job (the picture is already saved).
        """

    @abstractmethod
    def listen(self) -> AsyncIterator[str]:
        """Yield every reference published anywhere this bus reaches, forever.

        After an outage it reconnects by itself and then yields :data:`RESYNC`: the process's one
        listener must outlive any number of upstream failures without anyone restarting it.
        """

    def check(self) -> list[CheckMessage]:
        """Return system-check messages about the options (ids ``page_images.E04x``/``W04x``)."""
        return []

    def close(self) -> None:
        """Release what publish() holds open (a pooled connection); a later publish reopens it.

        Called when ``PAGE_IMAGES`` changes and the bus is rebuilt (tests' ``override_settings``):
        a dropped bus would otherwise leave its socket to the garbage collector, which warns.
        """
        return None  # most buses hold nothing between calls
