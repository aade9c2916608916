"""The broker fails at the moment of the click: the editor's request must answer within a bound,
with the claim released and a message, never hang, and the next click must work.

"Unreachable" is a port nobody listens on (connection refused, Celery's bounded publish retries).
"Hanging" is a server that accepts the connection and never answers, as a hung Redis or a dead
link behind a load balancer does: only the socket timeouts that check W050 asks for bound it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import TYPE_CHECKING

import pytest

from tests.reliability import case
from tests.servers import unused_port
from tests.support.jobs import celery_app
from tests.support.web import client_for, post

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.django_db(transaction=True)

#: The most a click may wait on a broken broker: two socket timeouts and Celery's retry pauses.
BOUND = 15.0
FAST = {"socket_timeout": 1, "socket_connect_timeout": 1}


@contextlib.contextmanager
def black_hole() -> Iterator[int]:
    """A port that accepts every connection and never sends a byte; yields the port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in accepted:
            connection.close()
        listener.close()


def click_and_time(editor, page):
    started = time.monotonic()
    response = post(client_for(editor), page)
    return response, time.monotonic() - started


def assert_refused_then_retry_works(editor, page, response, elapsed):
    assert elapsed < BOUND, f"the click waited {elapsed:.1f}s"
    assert response.status_code == 503
    assert "could not be queued" in response.content.decode()
    page.refresh_from_db()
    assert (page.image_state, page.image_generating) == ("error", False)
    with celery_app("memory://"):  # the broker is back
        response = post(client_for(editor), page)
    assert response.status_code == 200
    page.refresh_from_db()
    assert page.image_state == "generating"


@case(
    "broker",
    "Broker unreachable at the click (connection refused)",
    "Within seconds: 503 and 'The image job could not be queued (the task queue is "
    "unreachable). Try again.' in the container; the chip comes back; the next click works.",
)
def test_unreachable_broker_answers_within_the_bound(editor, page):
    with celery_app(f"redis://127.0.0.1:{unused_port()}/0", broker_transport_options=FAST):
        response, elapsed = click_and_time(editor, page)
    print(f"unreachable broker: the click answered in {elapsed:.2f}s")
    assert_refused_then_retry_works(editor, page, response, elapsed)


@case(
    "broker",
    "Broker accepts the connection and never answers (hung Redis), with the socket timeouts of "
    "check W050",
    "Within the bound: 503 and 'The image job could not be queued…'; the next click works.",
)
def test_hanging_broker_answers_within_the_bound(editor, page):
    with (
        black_hole() as port,
        celery_app(f"redis://127.0.0.1:{port}/0", broker_transport_options=FAST),
    ):
        response, elapsed = click_and_time(editor, page)
    print(f"hanging broker: the click answered in {elapsed:.2f}s")
    assert_refused_then_retry_works(editor, page, response, elapsed)
