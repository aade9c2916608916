"""The safe download against real HTTP servers on 127.0.0.1, the only address that may be reached.

Every test runs under ``connections``: a guard on ``socket.socket.connect`` that records each
connection attempt and fails any that is not to loopback. So a refusal of 10.0.0.1 or
169.254.169.254 is proven to happen before a connection, not after a failed one.
"""

from __future__ import annotations

import io
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
import requests
import urllib3.response
from PIL import Image

from page_images import download
from page_images.addresses import check_url
from page_images.download import DownloadedImage, download_image
from page_images.exceptions import (
    GenerationTimeoutError,
    InvalidImageError,
    PermanentGenerationError,
    TransientGenerationError,
)
from page_images.intake import validate_image
from tests.reliability import case

if TYPE_CHECKING:
    from pytest_django.fixtures import Settings


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 120, 200)).save(out, format="PNG")
    return out.getvalue()


PNG = png_bytes()
LOOPBACK = ("127.0.0.1", "::1")


# --- A small test server ----------------------------------------------------------------------

Route = Callable[["Handler"], None]


class Handler(BaseHTTPRequestHandler):
    """Answers each path with the route registered for it; records every request."""

    protocol_version = "HTTP/1.1"
    server: ImageServer

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        route = self.server.routes.get(self.path.split("?", 1)[0])
        if route is None:
            self.reply(404, b"not found", "text/plain")
        else:
            route(self)

    def reply(
        self,
        status: int,
        body: bytes = b"",
        content_type: str | None = "image/png",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class ImageServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes: dict[str, Route] = {}
        self.hits: list[str] = []
        self.stopping = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer is what many of these tests are about: not an error.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_port}{path}"


@pytest.fixture
def server() -> Iterator[ImageServer]:
    httpd = ImageServer()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@dataclass
class Connections:
    attempts: list[Any] = field(default_factory=list)

    @property
    def outside_loopback(self) -> list[Any]:
        return [address for address in self.attempts if address[0] not in LOOPBACK]


@pytest.fixture(autouse=True)
def connections(monkeypatch: pytest.MonkeyPatch) -> Connections:
    """Record every outgoing connection; fail the test on any that is not to loopback."""
    seen = Connections()
    real_connect = socket.socket.connect

    def guarded_connect(sock: socket.socket, address: Any) -> None:
        seen.attempts.append(address)
        if address[0] not in LOOPBACK:
            raise AssertionError(f"a connection to {address} was attempted")
        real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    return seen


def image_route(handler: Handler) -> None:
    handler.reply(200, PNG)


def fetch(url: str, **kwargs: Any) -> DownloadedImage:
    kwargs.setdefault("allow_loopback", True)
    kwargs.setdefault("timeout", 5.0)
    return download_image(url, **kwargs)


# --- Refused before connecting ----------------------------------------------------------------


@case(
    "provider-bytes",
    "A picture URL whose host resolves to a private address",
    "'The image service pointed at an address that is not a public address.'; no connection made.",
)
@pytest.mark.parametrize(
    "host",
    [
        "10.0.0.1",
        "192.168.1.1",
        "172.16.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "[fd00::1]",
        "0.0.0.0",  # (on Linux, connecting to it reaches this very machine)
        "[::ffff:169.254.169.254]",
        "167772161",  # 10.0.0.1 as one number: judged by what it resolves to
        "0x0a.0.0.1",
    ],
)
@pytest.mark.parametrize("scheme", ["https", "http"])
def test_private_targets_are_refused_without_connecting(
    host: str, scheme: str, connections: Connections, server: ImageServer
) -> None:
    server.routes["/latest/meta-data/"] = image_route
    started = time.monotonic()
    with pytest.raises(InvalidImageError) as caught:
        fetch(f"{scheme}://{host}:{server.server_port}/latest/meta-data/", allow_loopback=True)
    assert time.monotonic() - started < 0.5
    assert caught.value.user_message  # for the editor, and no address in it
    assert host.strip("[]") not in caught.value.user_message
    assert connections.attempts == []
    assert server.hits == []


@case(
    "provider-bytes",
    "A picture URL on 127.0.0.1 / localhost",
    "'The image service pointed at an address this site will not fetch from.'",
)
def test_loopback_is_refused_without_allow_loopback(
    server: ImageServer, connections: Connections
) -> None:
    server.routes["/a.png"] = image_route
    with pytest.raises(InvalidImageError, match="not a public address"):
        fetch(f"https://127.0.0.1:{server.server_port}/a.png", allow_loopback=False)
    with pytest.raises(InvalidImageError, match="plain http"):
        fetch(server.url("/a.png"), allow_loopback=False)
    assert connections.attempts == []
    assert server.hits == []


@case(
    "provider-bytes",
    "A picture URL that is malformed or not http(s) (file:, ftp:, data:)",
    "'The image service pointed at an address this site will not fetch from.'",
)
@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/a.png",
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/_GET",
        "data:image/png;base64,iVBORw0KGgo=",
        "//127.0.0.1/a.png",
        "a.png",
        "https:///a.png",
        "https://user:secret@127.0.0.1/a.png",
        "https://@127.0.0.1/a.png",
        "https://8.8.8.8\\@127.0.0.1/a.png",
        "https://8.8.8.8 /a.png",
        "https://8.8.8.8:99999/a.png",
    ],
)
def test_malformed_and_non_http_urls_are_refused(url: str, connections: Connections) -> None:
    with pytest.raises(InvalidImageError):
        fetch(url)
    assert connections.attempts == []


# --- Success ----------------------------------------------------------------------------------


def test_loopback_download_with_allow_loopback(
    server: ImageServer, connections: Connections
) -> None:
    server.routes["/a.png"] = image_route
    result = fetch(server.url("/a.png?x=1"))
    assert result == DownloadedImage(content=PNG, content_type="image/png")
    assert validate_image(result.content, declared_type=result.content_type).format == "PNG"
    assert connections.outside_loopback == []


def test_allow_loopback_defaults_to_the_setting(server: ImageServer, settings: Settings) -> None:
    server.routes["/a.png"] = image_route
    settings.PAGE_IMAGES = {"ALLOW_LOOPBACK_DOWNLOADS": True}
    assert download_image(server.url("/a.png")).content == PNG
    settings.PAGE_IMAGES = {}
    with pytest.raises(InvalidImageError):
        download_image(server.url("/a.png"))


@pytest.mark.parametrize(
    "content_type", [None, "application/octet-stream", "image/png; charset=binary", "IMAGE/JPEG"]
)
def test_neutral_and_image_types_are_passed_on_for_intake(
    server: ImageServer, content_type: str | None
) -> None:
    server.routes["/a"] = lambda handler: handler.reply(200, PNG, content_type)
    assert fetch(server.url("/a")).content_type == content_type


def test_a_session_passed_in_is_used_and_left_open(server: ImageServer) -> None:
    server.routes["/a.png"] = image_route
    with requests.Session() as session:
        assert fetch(server.url("/a.png"), session=session).content == PNG
        assert fetch(server.url("/a.png"), session=session).content == PNG


# --- Redirects --------------------------------------------------------------------------------


def redirect_to(location: str, status: int = 302) -> Route:
    return lambda handler: handler.reply(status, b"", None, {"Location": location})


@case(
    "provider-bytes",
    "A redirect to 127.0.0.1, 169.254.169.254 or a private range",
    "'The image service pointed at an address this site will not fetch from.'; the redirect is "
    "not followed.",
)
@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://10.0.0.1/a.png",
        "https://[fd00::1]/a.png",
        "http://0.0.0.0:{port}/a.png",
        "file:///etc/passwd",
    ],
)
def test_redirects_to_private_targets_are_refused_before_connecting(
    server: ImageServer, connections: Connections, target: str
) -> None:
    server.routes["/hop"] = redirect_to(target.format(port=server.server_port))
    server.routes["/a.png"] = image_route
    with pytest.raises(InvalidImageError):
        fetch(server.url("/hop"))
    assert server.hits == ["/hop"]
    assert connections.outside_loopback == []


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_within_loopback_are_followed(server: ImageServer, status: int) -> None:
    server.routes["/relative"] = redirect_to("/absolute", status)
    server.routes["/absolute"] = redirect_to(server.url("/a.png"), status)
    server.routes["/a.png"] = image_route
    result = fetch(server.url("/relative"))
    assert result.content == PNG
    assert server.hits == ["/relative", "/absolute", "/a.png"]


@case(
    "provider-bytes",
    "A redirect loop",
    "'The image service pointed at an address this site will not fetch from.' after the "
    "redirect cap.",
)
def test_redirect_loop_stops_after_max_redirects(server: ImageServer) -> None:
    server.routes["/loop"] = redirect_to("/loop")
    with pytest.raises(InvalidImageError, match="more than 3 redirects"):
        fetch(server.url("/loop"))
    assert server.hits == ["/loop"] * 4


def test_max_redirects_zero_follows_none(server: ImageServer) -> None:
    server.routes["/hop"] = redirect_to("/a.png")
    server.routes["/a.png"] = image_route
    with pytest.raises(InvalidImageError, match="redirects"):
        fetch(server.url("/hop"), max_redirects=0)
    assert server.hits == ["/hop"]


def test_redirect_without_location_is_permanent(server: ImageServer) -> None:
    server.routes["/hop"] = lambda handler: handler.reply(302, b"", None)
    with pytest.raises(PermanentGenerationError) as caught:
        fetch(server.url("/hop"))
    assert not isinstance(caught.value, InvalidImageError)
    assert "without Location" in caught.value.detail


# --- DNS rebinding ----------------------------------------------------------------------------


def fake_response(peer: Any) -> Any:
    sock = SimpleNamespace(getpeername=lambda: peer)
    return SimpleNamespace(raw=SimpleNamespace(connection=SimpleNamespace(sock=sock)), url="u")


@pytest.mark.parametrize("peer", [("10.0.0.1", 443), ("169.254.169.254", 80, 0, 0), ("fd00::1", 1)])
def test_peer_check_refuses_a_private_peer(peer: Any) -> None:
    with pytest.raises(InvalidImageError, match="connected to"):
        download.check_peer(fake_response(peer), allow_loopback=True)


@pytest.mark.parametrize(
    "response",
    [
        SimpleNamespace(raw=None, url="u"),
        SimpleNamespace(raw=SimpleNamespace(connection=None), url="u"),
        fake_response(None),
    ],
)
def test_peer_check_does_not_fail_when_the_peer_cannot_be_read(response: Any) -> None:
    download.check_peer(response, allow_loopback=False)


def _rebind(server: ImageServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """Our lookup says 127.0.0.2, the connection's lookup says 127.0.0.1, treated as internal.

    Only 127.0.0.1 may receive traffic here, so "internal" is simulated by refusing 127.0.0.1 in
    the address rule; the point is that the peer is read from the real urllib3 socket.
    """
    server.routes["/a.png"] = image_route
    real_getaddrinfo = socket.getaddrinfo
    answers = iter(["127.0.0.2", "127.0.0.1"])

    def rebinding_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.test":
            host = next(answers)
        return real_getaddrinfo(host, port, *args, **kwargs)

    real_rule = download.is_allowed_address

    def rule(value: Any, *, allow_loopback: bool) -> bool:
        return str(value) != "127.0.0.1" and real_rule(value, allow_loopback=allow_loopback)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_getaddrinfo)
    monkeypatch.setattr(download, "is_allowed_address", rule)
    return f"http://rebind.test:{server.server_port}/a.png"


@case(
    "provider-bytes",
    "DNS rebinding: the connected peer is private although the name looked public",
    "'The image service pointed at an address this site will not fetch from.'; the request is "
    "never sent to that address.",
)
def test_rebinding_is_refused_before_the_request_is_sent(
    server: ImageServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _rebind(server, monkeypatch)
    with pytest.raises(InvalidImageError, match=r"connected to 127\.0\.0\.1"):
        fetch(url)
    assert server.hits == []


def test_rebinding_through_a_session_of_the_callers_is_refused_before_the_body(
    server: ImageServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A session passed in is used as it is: the request goes out, the answer is refused unread.
    url = _rebind(server, monkeypatch)
    with requests.Session() as session, pytest.raises(InvalidImageError, match="connected to"):
        fetch(url, session=session)
    assert server.hits == ["/a.png"]


# --- Status codes -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_busy_and_server_errors_are_transient(server: ImageServer, status: int) -> None:
    server.routes["/a.png"] = lambda handler: handler.reply(status, b"busy", "text/plain")
    with pytest.raises(TransientGenerationError) as caught:
        fetch(server.url("/a.png"))
    assert f"HTTP {status}" in caught.value.detail


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_client_errors_are_permanent(server: ImageServer, status: int) -> None:
    server.routes["/a.png"] = lambda handler: handler.reply(status, b"no", "text/plain")
    with pytest.raises(PermanentGenerationError) as caught:
        fetch(server.url("/a.png"))
    assert f"HTTP {status}" in caught.value.detail


def test_connection_refused_is_transient() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransientGenerationError) as caught:
        fetch(f"http://127.0.0.1:{port}/a.png")
    assert not isinstance(caught.value, GenerationTimeoutError)


# --- Content types ----------------------------------------------------------------------------


@case(
    "provider-bytes",
    "An HTML page or other non-image type served as the picture",
    "'The image service sent back something that is not a picture.'",
)
@pytest.mark.parametrize(
    "content_type", ["text/html", "text/html; charset=utf-8", "image/svg+xml", "image/gif"]
)
def test_non_image_content_types_are_refused(server: ImageServer, content_type: str) -> None:
    # The body is a real PNG: the header alone is reason enough to refuse.
    server.routes["/a.png"] = lambda handler: handler.reply(200, PNG, content_type)
    with pytest.raises(InvalidImageError) as caught:
        fetch(server.url("/a.png"))
    assert content_type in caught.value.detail


# --- Size -------------------------------------------------------------------------------------


@case(
    "provider-bytes",
    "A Content-Length above MAX_BYTES",
    "'The picture is larger than this site accepts.'; the body is not read.",
)
def test_content_length_over_the_cap_is_refused_unread(server: ImageServer) -> None:
    def huge(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        handler.send_header("Content-Length", str(10**9))
        handler.end_headers()
        handler.wfile.flush()
        server.stopping.wait(10)  # a client that read on would hang here until its timeout

    server.routes["/huge"] = huge
    started = time.monotonic()
    with pytest.raises(InvalidImageError) as caught:
        fetch(server.url("/huge"), max_bytes=1000, timeout=5.0)
    assert time.monotonic() - started < 1.0
    assert "Content-Length 1000000000 > 1000" in caught.value.detail


def test_content_length_at_the_cap_is_accepted(server: ImageServer) -> None:
    server.routes["/a.png"] = image_route
    assert fetch(server.url("/a.png"), max_bytes=len(PNG)).content == PNG


@case(
    "provider-bytes",
    "A chunked body that grows past MAX_BYTES",
    "'The picture is larger than this site accepts.'; cut mid-stream.",
)
def test_chunked_body_over_the_cap_is_cut_mid_stream(
    server: ImageServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def endless_chunks(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        chunk = b"\0" * 16384
        try:
            for _ in range(64 * 1024):  # up to 1 GiB, far more than anyone should read
                if server.stopping.is_set():
                    return
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            handler.wfile.write(b"0\r\n\r\n")
        except OSError:
            return

    received: list[int] = []
    real_read1 = urllib3.response.HTTPResponse.read1

    def counting_read1(response: Any, *args: Any, **kwargs: Any) -> bytes:
        data = real_read1(response, *args, **kwargs)
        received.append(len(data))
        return data

    monkeypatch.setattr(urllib3.response.HTTPResponse, "read1", counting_read1)
    server.routes["/endless"] = endless_chunks
    with pytest.raises(InvalidImageError, match="larger") as caught:
        fetch(server.url("/endless"), max_bytes=200_000)
    assert "more than 200000 bytes" in caught.value.detail
    assert 200_000 < sum(received) <= 200_000 + download.CHUNK


# --- Deadline ---------------------------------------------------------------------------------


@case(
    "provider-bytes",
    "A slow drip: a few bytes at a time past DOWNLOAD_TIMEOUT",
    "'The image service took too long to answer. Try again.' at the deadline, whatever the pace.",
)
def test_slow_drip_is_cut_at_the_deadline(server: ImageServer) -> None:
    def drip(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        try:
            for _ in range(1000):  # one byte a second: each read alone is well within a timeout
                handler.wfile.write(b"\0")
                handler.wfile.flush()
                if server.stopping.wait(1.0):
                    return
        except OSError:
            return

    server.routes["/drip"] = drip
    started = time.monotonic()
    with pytest.raises(GenerationTimeoutError):
        fetch(server.url("/drip"), timeout=1.5)
    elapsed = time.monotonic() - started
    print(f"slow drip cut after {elapsed:.2f} s (deadline 1.5 s)")
    assert 1.4 <= elapsed < 1.9


def test_slow_headers_hit_the_deadline(server: ImageServer) -> None:
    def silent(handler: Handler) -> None:
        server.stopping.wait(10)

    server.routes["/silent"] = silent
    started = time.monotonic()
    with pytest.raises(GenerationTimeoutError):
        fetch(server.url("/silent"), timeout=1.0)
    assert time.monotonic() - started < 2.0


def test_deadline_spans_redirect_hops(server: ImageServer) -> None:
    def slow_hop(handler: Handler) -> None:
        time.sleep(0.6)
        handler.reply(302, b"", None, {"Location": "/slow"})

    server.routes["/slow"] = slow_hop
    started = time.monotonic()
    with pytest.raises(GenerationTimeoutError):
        fetch(server.url("/slow"), timeout=1.0, max_redirects=10)
    assert time.monotonic() - started < 1.8


# --- More refusals before any packet (branch `tiers`: coverage gaps) ----------------------------


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("https://8.8.8.8/a b.png", "unsafe characters"),  # a space both parsers let through
        ("https://" + "a" * 64 + ".example/a.png", "bad host name"),  # a DNS label of 64
        ("http://8.8.8.8/a.png", "plain http to a non-loopback host"),  # loopback allowed only
    ],
)
def test_refused_before_any_connection(url: str, detail: str, connections: Connections) -> None:
    with pytest.raises(InvalidImageError) as caught:
        check_url(url, allow_loopback=True)
    assert detail in caught.value.detail
    assert connections.attempts == []


def test_a_failed_lookup_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dns(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(TransientGenerationError, match="could not be looked up"):
        check_url("https://images.example/a.png", allow_loopback=False)


# --- The answer breaks down halfway (branch `coverage`) ------------------------------------------


def test_a_deadline_already_spent_fails_before_connecting(
    server: ImageServer, connections: Connections
) -> None:
    # What a provider call that used up DOWNLOAD_TIMEOUT leaves for the download: nothing.
    server.routes["/a.png"] = image_route
    with pytest.raises(GenerationTimeoutError, match="took too long"):
        fetch(server.url("/a.png"), timeout=0)
    assert connections.attempts == []
    assert server.hits == []


def test_a_body_in_an_encoding_it_cannot_decode_is_refused(server: ImageServer) -> None:
    # We ask for no encoding; a server that gzips anyway, and badly, sent no picture.
    server.routes["/a.png"] = lambda handler: handler.reply(
        200, b"not gzip at all", "image/png", {"Content-Encoding": "gzip"}
    )
    with pytest.raises(InvalidImageError) as caught:
        fetch(server.url("/a.png"))
    assert "undecodable body" in caught.value.detail


def test_a_connection_cut_mid_body_is_transient(server: ImageServer) -> None:
    # A CDN node restarting mid-answer: the next attempt may well get the whole picture.
    def cut(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        handler.send_header("Content-Length", str(len(PNG)))
        handler.end_headers()
        handler.wfile.write(PNG[:20])
        handler.wfile.flush()
        handler.close_connection = True

    server.routes["/a.png"] = cut
    with pytest.raises(TransientGenerationError) as caught:
        fetch(server.url("/a.png"))
    assert "reading " in caught.value.detail


def test_a_request_the_callers_session_cannot_build_is_permanent(
    server: ImageServer, connections: Connections
) -> None:
    # A header with a line break in the session passed in: every attempt would fail the same way,
    # so the job fails at once with a message instead of retrying.
    server.routes["/a.png"] = image_route
    with requests.Session() as session:
        session.headers["X-Trace"] = "one\r\ntwo"
        with pytest.raises(PermanentGenerationError) as caught:
            fetch(server.url("/a.png"), session=session)
    assert "InvalidHeader" in caught.value.detail
    assert server.hits == []
