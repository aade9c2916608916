"""The event stream under a real ASGI server (uvicorn in a thread), read over a real socket.

Every test runs twice: through Django's ASGI handler (the view) and through
:class:`page_images.asgi.EventStreams` in front of it, which must answer alike.

The stream is read with a raw socket rather than an HTTP client so that the test controls the
one thing that matters most here: the moment the connection drops, and what the server does then.
Publishing happens in the test's thread, as a Celery worker thread would; the hub lives in
uvicorn's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn
from django.core import signing
from django.core.asgi import get_asgi_application
from django.core.signing import BadSignature
from django.http import HttpResponse
from django.urls import path

from page_images.asgi import EventStreams
from page_images.events import publish
from page_images.live import stream, tokens
from page_images.live.hub import get_hub
from page_images.live.stream import event_stream, frames
from page_images.live.tokens import sign_references, unsign_references
from tests.reliability import case

if TYPE_CHECKING:
    from collections.abc import Iterator

urlpatterns = [
    path("events/", event_stream),
    path("hello/", lambda request: HttpResponse("hello from Django")),
]

PAGE_1 = "testapp.page:1"
PAGE_2 = "testapp.page:2"


class ServerThread:
    """uvicorn serving Django's ASGI application from its own thread and event loop."""

    def __init__(self, front: bool = False) -> None:
        self.front = front
        application = get_asgi_application()
        config = uvicorn.Config(
            EventStreams(application) if front else application,
            host="127.0.0.1",
            port=0,
            lifespan="off",
            ws="none",
            log_level="warning",
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.server.serve()

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def subscriber_count(self) -> int:
        """The hub's count, read in the server's own loop, where the hub lives."""

        async def count() -> int:
            return get_hub().subscriber_count

        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(count(), self.loop).result(timeout=5)

    def url(self, query: str = "", path: str = "/events/") -> str:
        return f"http://127.0.0.1:{self.port}{path}{query}"


@pytest.fixture(scope="module", params=["view", "front"])
def server(request: pytest.FixtureRequest) -> Iterator[ServerThread]:
    thread = ServerThread(front=request.param == "front")
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture(autouse=True)
def _urls(settings: Any) -> None:
    settings.ROOT_URLCONF = __name__


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5, trust_env=False) as client:  # never a proxy for 127.0.0.1
        yield client


class EventStream:
    """An EventSource's side of the connection: HTTP/1.1, chunked, frames split on blank lines."""

    def __init__(self, port: int, token: str, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(
            f"GET /events/?refs={token} HTTP/1.1\r\nHost: {host}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        self.raw = b""
        self.text = ""
        head = self._read_until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        self.status = int(head[0].split()[1])
        self.headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in head[1:])
        }
        assert self.headers.get("transfer-encoding") == "chunked"

    def _recv(self, deadline: float) -> None:
        self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the stream")
        self.raw += data

    def _read_until(self, marker: bytes, deadline: float | None = None) -> bytes:
        deadline = deadline or time.monotonic() + 5
        while marker not in self.raw:
            self._recv(deadline)
        found, _, self.raw = self.raw.partition(marker)
        return found

    def _read_exactly(self, size: int, deadline: float) -> bytes:
        while len(self.raw) < size:
            self._recv(deadline)
        found, self.raw = self.raw[:size], self.raw[size:]
        return found

    def frame(self, timeout: float = 5.0) -> str:
        """The next SSE frame, without its blank line; socket.timeout if none comes in time."""
        deadline = time.monotonic() + timeout
        while "\n\n" not in self.text:
            size = int(self._read_until(b"\r\n", deadline), 16)
            chunk = self._read_exactly(size + 2, deadline)[:-2]
            self.text += chunk.decode("utf-8")
        found, _, self.text = self.text.partition("\n\n")
        return found

    def no_frame_within(self, seconds: float) -> bool:
        try:
            self.frame(timeout=seconds)
        except TimeoutError:  # socket.timeout is TimeoutError since Python 3.10
            return True
        return False

    def close(self) -> None:
        # shutdown() first: the server must see the FIN now, as when a browser tab closes.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@pytest.fixture
def open_stream(server: ServerThread) -> Iterator[Any]:
    streams: list[EventStream] = []

    def open_(*references: str) -> EventStream:
        opened = EventStream(server.port, sign_references(references))
        streams.append(opened)
        return opened

    yield open_
    for opened in streams:
        opened.close()
    wait_for_subscribers(server, 0)


def wait_for_subscribers(server: ServerThread, expected: int, timeout: float = 2.0) -> float:
    started = time.monotonic()
    while server.subscriber_count() != expected:
        if time.monotonic() - started > timeout:
            pytest.fail(f"subscriber_count is not {expected} after {timeout}s", pytrace=False)
        time.sleep(0.01)
    return time.monotonic() - started


def test_stream_opens_with_retry_and_resync_then_sends_only_its_changes(server, open_stream):
    events = open_stream(PAGE_1)
    assert events.status == 200
    assert events.headers["content-type"] == "text/event-stream"
    assert events.headers["cache-control"] == "no-cache"
    assert events.headers["x-accel-buffering"] == "no"
    assert events.frame() == "retry: 3000"
    assert events.frame() == "event: resync\ndata: "

    publish(PAGE_2)  # not on this page
    publish(PAGE_1)
    assert events.frame() == f"event: changed\ndata: {PAGE_1}"
    assert events.no_frame_within(0.3)


def test_each_stream_gets_the_changes_of_its_own_page(server, open_stream):
    first, second = open_stream(PAGE_1), open_stream(PAGE_2, PAGE_1)
    for events in (first, second):
        assert events.frame() == "retry: 3000"
        assert events.frame() == "event: resync\ndata: "
    assert server.subscriber_count() == 2

    publish(PAGE_2)
    assert second.frame() == f"event: changed\ndata: {PAGE_2}"
    assert first.no_frame_within(0.3)


def test_keepalive_comment_when_idle(open_stream, monkeypatch):
    monkeypatch.setattr(stream, "KEEPALIVE_SECONDS", 0.2)
    events = open_stream(PAGE_1)
    events.frame(), events.frame()
    assert events.frame(timeout=2) == ": keep-alive"
    assert events.frame(timeout=2) == ": keep-alive"
    publish(PAGE_1)  # and events still pass between keep-alives
    frame = events.frame(timeout=2)
    while frame == ": keep-alive":
        frame = events.frame(timeout=2)
    assert frame == f"event: changed\ndata: {PAGE_1}"


def test_disconnect_removes_the_subscription(server, open_stream):
    events = open_stream(PAGE_1)
    events.frame(), events.frame()
    assert server.subscriber_count() == 1
    events.close()
    seconds = wait_for_subscribers(server, 0, timeout=2.0)
    print(f"subscription removed {seconds * 1000:.0f} ms after the client closed")
    publish(PAGE_1)  # nobody listens: nothing to deliver, nothing raised


@case(
    "requests",
    "A stream URL whose signed list of records was edited, or missing",
    "400; no subscription.",
)
def test_tampered_or_missing_refs_are_a_400(server, http):
    token = sign_references([PAGE_1])
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    for query in [f"?refs={tampered}", "", "?refs=", f"?refs={token}x"]:
        response = http.get(server.url(query))
        assert response.status_code == 400, query
        assert response.headers["content-type"].startswith("text/plain")
        assert "refs" in response.text


@case(
    "requests",
    "A stream URL signed over more than 1,000 records",
    "400.",
)
def test_more_than_a_thousand_references_are_a_400(server, http):
    token = sign_references(f"testapp.page:{pk}" for pk in range(1001))
    response = http.get(server.url(f"?refs={token}"))
    assert response.status_code == 400
    assert "1000" in response.text


@case(
    "requests",
    "POST to the event stream",
    "405.",
)
def test_only_get(server, http):
    response = http.post(server.url(f"?refs={sign_references([PAGE_1])}"))
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"


def test_no_bus_is_a_404_so_pages_poll(server, http, settings):
    settings.PAGE_IMAGES = {**settings.PAGE_IMAGES, "EVENTS": None}
    response = http.get(server.url(f"?refs={sign_references([PAGE_1])}"))
    assert response.status_code == 404


@case(
    "events",
    "The event stream requested from a WSGI server",
    "404 at once, so the page polls instead of tying up a worker thread.",
)
def test_wsgi_is_a_404_rather_than_an_endless_read(client):
    # Django's test client goes through the WSGI handler, as runserver and gunicorn do.
    response = client.get(f"/events/?refs={sign_references([PAGE_1])}")
    assert response.status_code == 404


def test_signed_references_round_trip_compactly():
    references = [f"testapp.page:{pk}" for pk in range(200)]
    token = sign_references(reversed(references))
    assert sorted(unsign_references(token)) == sorted(references)
    assert len(token) < len(",".join(references)) / 2  # compressed: fits a URL comfortably
    assert sign_references(["b:1", "a:1", "a:1"]) == sign_references(["a:1", "b:1"])
    with pytest.raises(BadSignature):
        unsign_references(token[:-1] + ("A" if token[-1] != "A" else "B"))


@pytest.mark.parametrize(
    "payload",
    ["a", "bm90IGpzb24", ".bm90IHpsaWI"],
    ids=["not base64", "not JSON", "not zlib"],
)
def test_genuinely_signed_nonsense_is_a_bad_signature(payload):
    # Found by fuzzing (tests/faults/test_fuzzing.py): a token signed with the site's key and the
    # stream's salt but not made by sign_references raised binascii/JSON/zlib errors (a 500).
    token = signing.TimestampSigner(salt=tokens.SALT).sign(payload)
    with pytest.raises(BadSignature):
        unsign_references(token)


@pytest.fixture(scope="module")
def front() -> Iterator[ServerThread]:
    thread = ServerThread(front=True)
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


def test_the_front_hands_every_other_request_to_django(front, http):
    response = http.get(front.url(path="/hello/"))
    assert response.status_code == 200
    assert response.text == "hello from Django"
    assert http.get(front.url(path="/nowhere/")).status_code == 404


@case(
    "requests",
    "An event stream asked for with a Host header not in ALLOWED_HOSTS",
    "400, as Django answers any request for a host it does not serve.",
)
def test_a_host_not_allowed_is_a_400(front, http, settings):
    settings.ALLOWED_HOSTS = ["pages.example"]
    token = sign_references([PAGE_1])
    response = http.get(front.url(f"?refs={token}"), headers={"Host": "evil.example"})
    assert response.status_code == 400
    events = EventStream(front.port, token, host="pages.example")
    try:
        assert events.status == 200
    finally:
        events.close()


def ask_the_front(headers: list[tuple[bytes, bytes]], server: Any = None) -> tuple[int, bytes]:
    """One request to the stream's URL straight through EventStreams, as a server would make it
    (a POST: refused at once with 405 once its host passed, so nothing streams)."""
    sent: list[dict[str, Any]] = []

    async def django(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the stream's URL never reaches Django")

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/events/", "headers": headers}
    if server is not None:
        scope["server"] = server
    asyncio.run(EventStreams(django)(scope, receive, send))
    start, body = sent
    return start["status"], body["body"]


def test_the_front_finds_the_host_as_django_does(settings):
    # As HttpRequest.get_host(): the Host header wherever it comes, else (HTTP/1.0) the server's
    # own address; with neither, no host, and so not an allowed one.
    settings.ALLOWED_HOSTS = ["pages.example", "127.0.0.1"]
    invalid = (400, b"Invalid HTTP_HOST header.")
    after_others = [(b"accept", b"text/event-stream"), (b"host", b"evil.example")]
    assert ask_the_front(after_others) == invalid
    after_others[1] = (b"host", b"pages.example")
    assert ask_the_front(after_others) == (405, b"Only GET.")
    assert ask_the_front([], server=("127.0.0.1", 8000)) == (405, b"Only GET.")
    assert ask_the_front([], server=("10.0.0.7", 8000)) == invalid
    assert ask_the_front([]) == invalid  # a Unix socket, and no Host


def test_the_front_allows_local_hosts_in_debug_without_allowed_hosts(settings):
    settings.DEBUG, settings.ALLOWED_HOSTS = True, []
    assert ask_the_front([(b"host", b"localhost:8000")]) == (405, b"Only GET.")
    assert ask_the_front([(b"host", b"evil.example")]) == (400, b"Invalid HTTP_HOST header.")
    settings.DEBUG = False
    assert ask_the_front([(b"host", b"localhost:8000")]) == (400, b"Invalid HTTP_HOST header.")


def test_an_open_stream_holds_no_thread(server):
    # Django's handler gives each request a thread for its sync middleware: for a stream it would
    # idle for hours, one per open tab (stream._release_request_thread; the front has none).
    before = threading.active_count()
    streams = [
        EventStream(server.port, sign_references([f"testapp.page:{pk}"])) for pk in range(20)
    ]
    try:
        for events in streams:
            assert events.frame() == "retry: 3000"
        wait_for_subscribers(server, 20)
        assert threading.active_count() <= before + 1  # asgiref's pool may add one thread
    finally:
        for events in streams:
            events.close()
        wait_for_subscribers(server, 0)


def test_the_request_thread_is_given_back_only_when_there_is_one(monkeypatch):
    # Django's handler starts the request's thread at the first sync call (a sync middleware): a
    # stream gives it back. With no sync call yet there is none to give back, and an asgiref that
    # keeps its bookkeeping elsewhere is left alone; either way the stream streams.
    from asgiref.sync import SyncToAsync, ThreadSensitiveContext, sync_to_async

    from page_images.events.base import RESYNC

    async def first_frames() -> tuple[str, str]:
        stream = frames([PAGE_1])
        try:
            opening = await stream.__anext__()
            get_hub().dispatch(RESYNC)
            return opening, await stream.__anext__()
        finally:
            await stream.aclose()

    async def in_a_request(sync_call_first: bool) -> tuple[tuple[str, str], bool]:
        async with ThreadSensitiveContext() as context:
            if sync_call_first:
                await sync_to_async(lambda: None)()
            return await first_frames(), context in SyncToAsync.context_to_thread_executor

    expected = ("retry: 3000\n\nevent: resync\ndata: \n\n", "event: resync\ndata: \n\n")
    assert asyncio.run(in_a_request(sync_call_first=True)) == (expected, False)
    assert asyncio.run(in_a_request(sync_call_first=False)) == (expected, False)
    monkeypatch.delattr(SyncToAsync, "thread_sensitive_context")
    assert asyncio.run(first_frames()) == expected


def test_a_client_that_leaves_while_a_frame_is_sent_ends_the_stream_at_once(monkeypatch):
    # The disconnect lands while the first frame is being written (a slow socket): no wait is
    # running for it to wake, so the front must look before it waits again, not a keep-alive on.
    from page_images.live.asgi import _follow

    monkeypatch.setattr(stream, "KEEPALIVE_SECONDS", 30.0)

    async def scenario() -> tuple[list[bytes], float, int]:
        left = asyncio.Event()
        sent: list[bytes] = []

        async def receive() -> dict[str, Any]:
            await left.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message["body"])
            left.set()
            for _ in range(5):  # the disconnect is received before this send returns
                await asyncio.sleep(0)

        hub = get_hub()
        started = time.monotonic()
        await asyncio.wait_for(_follow(hub, ["testapp.page:1"], "", receive, send), 5)
        return sent, time.monotonic() - started, hub.reference_count

    sent, took, left_subscribed = asyncio.run(scenario())
    assert sent == [stream.FIRST_FRAME.encode()]
    assert took < 1.0
    assert left_subscribed == 0
