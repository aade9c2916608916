"""The safe download, for providers that answer with a URL instead of the bytes: the transport.

Which targets may be reached is :mod:`page_images.addresses`' business; this module applies its
rules to every redirect hop before connecting, and again to the socket actually connected, before
a byte of the request is sent on it (DNS rebinding). The body is counted as it streams and cut at
the size cap, and one deadline covers the whole exchange. Whatever passes here is still only
bytes: :mod:`page_images.intake` decides if it is a picture.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import requests
import urllib3.exceptions
from django.utils.translation import gettext_noop
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from page_images.addresses import REFUSED_TARGET, check_url, is_allowed_address
from page_images.conf import app_settings
from page_images.exceptions import (
    GenerationTimeoutError,
    InvalidImageError,
    PermanentGenerationError,
    TransientGenerationError,
)
from page_images.intake import TOO_LARGE, check_declared_type

if TYPE_CHECKING:
    import socket

CHUNK = 64 * 1024
#: No single connect or read waits longer than this, even with a generous overall deadline.
MAX_OPERATION_TIMEOUT = 10.0
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

UNREACHABLE = gettext_noop("The picture could not be fetched from the image service.")


@dataclass(frozen=True)
class DownloadedImage:
    """The raw body of a download that obeyed every rule; not yet known to be an image."""

    content: bytes
    content_type: str | None


def _refuse_peer(peer: Any, target: str, *, allow_loopback: bool) -> None:
    if not is_allowed_address(str(peer), allow_loopback=allow_loopback):
        raise InvalidImageError(REFUSED_TARGET, detail=f"connected to {peer} for {target}")


def _checking_pool(
    pool_class: type[HTTPConnectionPool], connection_class: type[HTTPConnection], loopback: bool
) -> type[HTTPConnectionPool]:
    """``pool_class`` whose connections check their peer as soon as the socket is connected."""

    class Connection(connection_class):  # type: ignore[valid-type,misc]
        def _new_conn(self) -> socket.socket:
            sock: socket.socket = super()._new_conn()
            try:
                _refuse_peer(sock.getpeername()[0], self.host, allow_loopback=loopback)
            except BaseException:
                sock.close()
                raise
            return sock

    return type(pool_class.__name__, (pool_class,), {"ConnectionCls": Connection})


class PeerCheckingAdapter(HTTPAdapter):
    """Refuse a connection to an address the URL check would have refused, before using it.

    DNS can answer differently between our lookup and the connection's (DNS rebinding). The
    connected socket's peer is the truth, and it is checked before the TLS handshake or the
    request is sent on it: a rebinding target gets a TCP handshake and nothing else.
    """

    def __init__(self, *, allow_loopback: bool) -> None:
        self.allow_loopback = allow_loopback  # before HTTPAdapter.__init__ builds the pool manager
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _checking_pool(HTTPConnectionPool, HTTPConnection, self.allow_loopback),
            "https": _checking_pool(HTTPSConnectionPool, HTTPSConnection, self.allow_loopback),
        }


def _socket(response: requests.Response) -> Any:
    """The socket under a streamed response (urllib3 2.x), or ``None`` if it cannot be reached."""
    return getattr(getattr(response.raw, "connection", None), "sock", None)


def check_peer(response: requests.Response, *, allow_loopback: bool) -> None:
    """The same check on a response's socket, for a ``session`` passed in without our adapter.

    There the request has been sent already; the answer is refused before its body is read. If
    the peer cannot be read (another transport), the earlier check stands alone.
    """
    sock = _socket(response)
    try:
        peer = sock.getpeername()[0]
    except (AttributeError, OSError, TypeError, IndexError):
        return
    _refuse_peer(peer, str(response.url), allow_loopback=allow_loopback)


def _check_status(response: requests.Response, url: str) -> None:
    """Map an HTTP failure to whether retrying can help: busy/timeouts/5xx may pass, 4xx won't."""
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = f"HTTP {status} from {url}"
    if status in (408, 429) or status >= 500:
        raise TransientGenerationError(detail=detail)
    raise PermanentGenerationError(UNREACHABLE, detail=detail)


def _remaining(deadline: float, url: str) -> float:
    """Seconds left before ``deadline``; past it, the download has failed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise GenerationTimeoutError(detail=f"download deadline passed fetching {url}")
    return left


def _read_chunk(response: requests.Response, deadline: float) -> bytes:
    """One receive's worth of the body, waiting no longer than the time left.

    ``read1`` returns whatever one receive brought, where ``read(n)`` (and so ``iter_content``)
    waits for all ``n`` bytes: a server dripping a byte a second would never let the deadline be
    checked. The socket timeout is narrowed to the time left before each receive, so even a
    silent server is cut at the deadline, not a full per-operation timeout later.
    """
    left = _remaining(deadline, response.url)
    sock = _socket(response)
    if sock is not None:
        sock.settimeout(min(left, MAX_OPERATION_TIMEOUT))
    raw = response.raw
    read = getattr(raw, "read1", None) or raw.read  # read1 needs urllib3 >= 2.1
    return bytes(read(CHUNK, decode_content=True))


def _read_body(response: requests.Response, *, max_bytes: int, deadline: float) -> bytes:
    """The body, refused as soon as it passes ``max_bytes`` or the deadline.

    Content-Length is checked first so an honest oversized answer is refused unread; the running
    count catches a dishonest or chunked one without ever holding more than the cap (plus one
    chunk) in memory.
    """
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        raise InvalidImageError(
            TOO_LARGE, detail=f"Content-Length {declared} > {max_bytes} from {response.url}"
        )
    body = bytearray()
    try:
        while chunk := _read_chunk(response, deadline):
            body += chunk
            if len(body) > max_bytes:
                raise InvalidImageError(
                    TOO_LARGE, detail=f"more than {max_bytes} bytes from {response.url}"
                )
    except urllib3.exceptions.TimeoutError as exc:
        raise GenerationTimeoutError(detail=f"reading {response.url}: {exc}") from exc
    except urllib3.exceptions.DecodeError as exc:
        raise InvalidImageError(detail=f"undecodable body from {response.url}: {exc}") from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise TransientGenerationError(detail=f"reading {response.url}: {exc}") from exc
    _remaining(deadline, response.url)
    return bytes(body)


def _get(http: requests.Session, url: str, deadline: float) -> requests.Response:
    """Send one request, with connect and read timeouts no longer than the time left."""
    left = min(_remaining(deadline, url), MAX_OPERATION_TIMEOUT)
    try:
        return http.get(
            url,
            stream=True,
            allow_redirects=False,
            timeout=(left, left),
            # Images are compressed already; asking for no encoding removes a gzip-bomb layer.
            headers={"Accept-Encoding": "identity"},
        )
    except requests.Timeout as exc:
        raise GenerationTimeoutError(detail=f"{type(exc).__name__} fetching {url}") from exc
    except requests.ConnectionError as exc:
        raise TransientGenerationError(
            detail=f"{type(exc).__name__} fetching {url}: {exc}"
        ) from exc
    except requests.RequestException as exc:
        raise PermanentGenerationError(
            UNREACHABLE, detail=f"{type(exc).__name__} fetching {url}: {exc}"
        ) from exc


def _next_url(response: requests.Response, url: str) -> str | None:
    """The redirect target, resolved against ``url``; ``None`` if this is not a redirect."""
    if response.status_code not in REDIRECT_STATUSES:
        return None
    location = response.headers.get("Location")
    if not location:
        raise PermanentGenerationError(
            UNREACHABLE, detail=f"HTTP {response.status_code} without Location from {url}"
        )
    return urljoin(url, location)


def _fetch(
    http: requests.Session,
    url: str,
    *,
    max_bytes: int,
    deadline: float,
    allow_loopback: bool,
    max_redirects: int,
) -> DownloadedImage:
    """Follow redirects by hand so every hop passes :func:`check_url` before it is connected to."""
    for _hop in range(max_redirects + 1):
        url = check_url(url, allow_loopback=allow_loopback)
        with _get(http, url, deadline) as response:
            check_peer(response, allow_loopback=allow_loopback)
            _remaining(deadline, url)
            next_url = _next_url(response, url)
            if next_url is not None:
                url = next_url
                continue
            _check_status(response, url)
            content_type = response.headers.get("Content-Type")
            check_declared_type(content_type)
            content = _read_body(response, max_bytes=max_bytes, deadline=deadline)
            return DownloadedImage(content=content, content_type=content_type)
    raise InvalidImageError(
        REFUSED_TARGET, detail=f"more than {max_redirects} redirects, last {url}"
    )


def download_image(
    url: str,
    *,
    max_bytes: int | None = None,
    timeout: float | None = None,
    allow_loopback: bool | None = None,
    max_redirects: int = 3,
    session: requests.Session | None = None,
) -> DownloadedImage:
    """Fetch an image URL under every rule above; raise a ``GenerationError`` subclass if not.

    ``None`` arguments take their value from ``PAGE_IMAGES``. A session made here checks each
    connection's peer before sending on it (:class:`PeerCheckingAdapter`) and ignores proxy and
    ``.netrc`` settings from the environment: a proxy would make the connected peer the proxy
    rather than the target. A ``session`` passed in is used as it is, and its answers' peers are
    checked before their bodies are read.
    """
    max_bytes = app_settings.MAX_BYTES if max_bytes is None else max_bytes
    timeout = app_settings.DOWNLOAD_TIMEOUT if timeout is None else timeout
    loopback = app_settings.ALLOW_LOOPBACK_DOWNLOADS if allow_loopback is None else allow_loopback
    deadline = time.monotonic() + timeout
    http = session or requests.Session()
    if session is None:
        http.trust_env = False
        adapter = PeerCheckingAdapter(allow_loopback=loopback)
        http.mount("https://", adapter)
        http.mount("http://", adapter)
    try:
        return _fetch(
            http,
            url,
            max_bytes=max_bytes,
            deadline=deadline,
            allow_loopback=loopback,
            max_redirects=max_redirects,
        )
    finally:
        if session is None:
            http.close()
