"""A fake image provider for tests: a real HTTP server on 127.0.0.1 speaking the OpenAI images API,
and its chat completions API for the vision model that writes alt text.

Why a server and not a mock: the claim "generation works" covers LiteLLM's request building, the
OpenAI SDK's HTTP client, its error mapping and our safe download, and only real HTTP exercises
them. Point ``LiteLLMBackend`` at :attr:`FakeImageProvider.api_base` and LiteLLM runs unchanged.
Tell it how to answer with :meth:`FakeImageProvider.push` (one answer per call, in order) or
:attr:`FakeImageProvider.default`; descriptions (``POST /v1/chat/completions``) likewise with
:meth:`FakeImageProvider.push_description` and :attr:`FakeImageProvider.description`.

A request with ``"stream": true`` is answered as OpenAI streams gpt-image models, in Server-Sent
Events: ``image_generation.partial_image`` up to ``partial_images`` times at the fractions of
:attr:`FakeImageProvider.latency` that :attr:`FakeImageProvider.partial_schedule` names, then
``image_generation.completed``.
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import hashlib
import inspect
import io
import json
import math
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from PIL import Image

__all__ = ["Behaviour", "FakeImageProvider", "ReceivedRequest", "Respond", "png_bytes"]

_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


def png_bytes(
    width: int = 64, height: int = 64, color: tuple[int, int, int] = (200, 80, 40)
) -> bytes:
    """A real PNG, because the code under test decodes what it receives and must not be fooled."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="PNG")
    return out.getvalue()


def _prompt_png(prompt: str, size: tuple[int, int]) -> bytes:
    # Colour from the prompt: a test can tell which request an image answered.
    digest = hashlib.sha256(prompt.encode()).digest()
    return png_bytes(size[0], size[1], (digest[0], digest[1], digest[2]))


@dataclass(frozen=True)
class ReceivedRequest:
    """One generation request as it arrived, so tests assert on what LiteLLM really sent."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def prompt(self) -> str:
        return str(self.body.get("prompt", ""))

    @property
    def text(self) -> str:
        """A chat request's text parts, joined: the instruction a describer sent."""
        parts = [
            part.get("text", "")
            for message in self.body.get("messages", [])
            for part in (message.get("content") if isinstance(message.get("content"), list) else [])
            if isinstance(part, dict) and part.get("type") == "text"
        ]
        return "\n".join(parts)

    @property
    def image_urls(self) -> list[str]:
        """A chat request's image parts: the ``data:`` URIs of the pictures to describe."""
        return [
            str(part.get("image_url", {}).get("url", ""))
            for message in self.body.get("messages", [])
            for part in (message.get("content") if isinstance(message.get("content"), list) else [])
            if isinstance(part, dict) and part.get("type") == "image_url"
        ]


@dataclass(frozen=True)
class Behaviour:
    """How to answer one generation call; frozen so one value can be pushed many times."""

    kind: str  # "b64", "url", "text", "error", or to a stream "cut" or "refuse"
    status: int = 200
    content: bytes | None = None
    error: dict[str, Any] | None = None
    content_type: str = "image/png"
    redirect_to: str | None = None
    drip: tuple[int, float] | None = None
    hang: float = 0.0
    #: A description's text (kind "text"); None: the provider's :attr:`description`.
    text: str | None = None


class Respond:
    """The provider's answers by name, so a test reads as the failure it is about."""

    @staticmethod
    def b64(content: bytes | None = None) -> Behaviour:
        """200 with ``b64_json``: the prompt's own PNG, or ``content``."""
        return Behaviour("b64", content=content)

    @staticmethod
    def url(
        content: bytes | None = None,
        content_type: str = "image/png",
        status: int = 200,
        redirect_to: str | None = None,
        drip: tuple[int, float] | None = None,
    ) -> Behaviour:
        """200 with a ``url``; ``content_type``, ``status``, ``redirect_to`` and ``drip`` (chunk
        size, seconds between chunks) shape the file answer, where the download's defences live."""
        return Behaviour(
            "url",
            status=status,
            content=content,
            content_type=content_type,
            redirect_to=redirect_to,
            drip=drip,
        )

    @staticmethod
    def text(text: str) -> Behaviour:
        """200 from the chat endpoint with ``text`` as the description ("" for an empty one)."""
        return Behaviour("text", text=text)

    @staticmethod
    def error(
        status: int, message: str, *, code: str | None = None, type: str = "invalid_request_error"
    ) -> Behaviour:
        """OpenAI's error body, which is what the SDK maps to its exception classes."""
        body = {"error": {"message": message, "type": type, "param": None, "code": code}}
        return Behaviour("error", status=status, error=body)

    @staticmethod
    def rate_limited() -> Behaviour:
        return Respond.error(
            429, "Rate limit reached for images.", code="rate_limit_exceeded", type="requests"
        )

    @staticmethod
    def server_error() -> Behaviour:
        return Respond.error(
            500, "The server had an error processing your request.", type="server_error"
        )

    @staticmethod
    def unavailable() -> Behaviour:
        return Respond.error(503, "The engine is currently overloaded.", type="server_error")

    @staticmethod
    def content_policy() -> Behaviour:
        return Respond.error(
            400,
            "Your request was rejected as a result of our safety system.",
            code="content_policy_violation",
            type="image_generation_user_error",
        )

    @staticmethod
    def bad_api_key() -> Behaviour:
        return Respond.error(401, "Incorrect API key provided.", code="invalid_api_key")

    @staticmethod
    def hang(seconds: float) -> Behaviour:
        """Answer like :meth:`b64` (or, to a description, with the default text) after
        ``seconds``; ``stop()`` ends the wait: no slow teardown."""
        return Behaviour("b64", hang=seconds)

    @staticmethod
    def cut_stream() -> Behaviour:
        """To a stream: the partials, then the connection closes without the picture."""
        return Behaviour("cut")

    @staticmethod
    def refuse_stream() -> Behaviour:
        """To a stream: the partials, then OpenAI's ``error`` event (a mid-way safety refusal)."""
        body = {
            "error": {
                "message": "Your request was rejected as a result of our safety system.",
                "type": "image_generation_user_error",
                "code": "moderation_blocked",
            }
        }
        return Behaviour("refuse", error=body)

    @staticmethod
    def bad_bytes() -> Behaviour:
        return Behaviour("b64", content=b"this is not an image")

    @staticmethod
    def oversize(n_bytes: int) -> Behaviour:
        """A PNG header then junk, longer than ``n_bytes``: size limits must act before decoding."""
        return Behaviour("b64", content=png_bytes(8, 8) + b"\0" * n_bytes)


@dataclass
class _State:
    queue: list[Behaviour] = field(default_factory=list)
    requests: list[ReceivedRequest] = field(default_factory=list)
    description_queue: list[Behaviour] = field(default_factory=list)
    description_requests: list[ReceivedRequest] = field(default_factory=list)
    files: dict[str, tuple[bytes, Behaviour]] = field(default_factory=dict)
    file_requests: int = 0
    #: When the calls inside the rate limit arrived (monotonic), and how many were refused.
    admitted: collections.deque[float] = field(default_factory=collections.deque)
    rate_limited: int = 0
    connections: set[socket.socket] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # socketserver's default backlog is 5: a burst of concurrent calls (a worker pool of 100
    # threads) overflowed it, and the kernel's one-second SYN retry showed up as provider latency.
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-answer is what timeout tests do on purpose: not worth a traceback.
        if not isinstance(sys.exc_info()[1], (*_DISCONNECTS, TimeoutError)):
            super().handle_error(request, client_address)


class FakeImageProvider:
    """``with FakeImageProvider() as provider:`` serves on ``provider.api_base`` in the block."""

    #: What the chat endpoint describes every picture as, unless told otherwise.
    DESCRIPTION = "A plain square of a single colour"
    #: When a streamed answer sends its partials, as fractions of :attr:`latency`.
    PARTIAL_SCHEDULE = (0.3, 0.6, 0.9)

    def __init__(
        self,
        *,
        image_size: tuple[int, int] = (64, 64),
        latency: float = 0.0,
        port: int = 0,
        description: str = DESCRIPTION,
    ) -> None:
        self.image_size = image_size
        self.latency = latency
        #: When to send each partial of a stream, as fractions of :attr:`latency` (the first
        #: ``partial_images`` of them): what a test of "first preview at 30 %" sets.
        self.partial_schedule: tuple[float, ...] = self.PARTIAL_SCHEDULE
        self.port = port
        self.default: Behaviour = Respond.b64()
        #: The answer to a description request when none was pushed.
        self.description: Behaviour = Respond.text(description)
        #: ``(N, seconds)``: answer 429, with ``Retry-After``, to an image call that would be the
        #: N+1st inside any ``seconds`` (a sliding window, as providers count "per minute"; a test
        #: shrinks the minute). None: no limit.
        self.rate_limit: tuple[int, float] | None = None
        self._state = _State()
        self._server: _Server | None = None
        self._url: str | None = None

    def start(self) -> FakeImageProvider:
        handler = type("Handler", (_Handler,), {"owner": self})
        self._state.stopping.clear()
        self._server = _Server(("127.0.0.1", self.port), handler)
        self._url = f"http://127.0.0.1:{self._server.server_address[1]}"
        # A short poll interval: every test tears a provider down, and stop() waits one poll.
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Wake hanging answers and cut kept-alive connections, so teardown never waits on them."""
        self._state.stopping.set()
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        with self._state.lock:
            connections = list(self._state.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        server.server_close()
        _close_litellm_clients(self.url)

    def __enter__(self) -> FakeImageProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("FakeImageProvider is not started")
        return self._url

    @property
    def api_base(self) -> str:
        return f"{self.url}/v1"

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    @property
    def generation_calls(self) -> int:
        return len(self.requests)

    @property
    def rate_limited(self) -> int:
        """How many image calls were answered 429 by :attr:`rate_limit`."""
        with self._state.lock:
            return self._state.rate_limited

    def _refuse(self) -> float | None:
        """Seconds until a call fits :attr:`rate_limit`, counted as refused; None: admitted.
        Called with the state's lock held."""
        state = self._state
        if self.rate_limit is None:
            return None
        limit, window = self.rate_limit
        now = time.monotonic()
        while state.admitted and state.admitted[0] <= now - window:
            state.admitted.popleft()
        if len(state.admitted) < limit:
            state.admitted.append(now)
            return None
        state.rate_limited += 1
        return state.admitted[0] + window - now

    @property
    def file_requests(self) -> int:
        with self._state.lock:
            return self._state.file_requests

    @property
    def description_requests(self) -> list[ReceivedRequest]:
        """The chat (describe) requests, in order: kept apart from :attr:`requests`."""
        with self._state.lock:
            return list(self._state.description_requests)

    def push(self, *behaviours: Behaviour) -> None:
        with self._state.lock:
            self._state.queue.extend(behaviours)

    def push_description(self, *behaviours: Behaviour) -> None:
        """Answers for the next description requests, in order: :meth:`Respond.text`, an error,
        :meth:`Respond.hang`."""
        with self._state.lock:
            self._state.description_queue.extend(behaviours)

    def reset(self) -> None:
        """Back to a fresh provider without a new port, for a fixture shared by several tests."""
        with self._state.lock:
            self._state.queue.clear()
            self._state.requests.clear()
            self._state.description_queue.clear()
            self._state.description_requests.clear()
            self._state.files.clear()
            self._state.file_requests = 0
            self._state.admitted.clear()
            self._state.rate_limited = 0
        self.rate_limit = None
        self.default = Respond.b64()
        self.description = Respond.text(self.DESCRIPTION)
        self.latency = 0.0
        self.partial_schedule = self.PARTIAL_SCHEDULE


def _close_litellm_clients(url: str) -> None:
    """Close and forget the clients LiteLLM pooled for a provider that is gone.

    LiteLLM keeps one OpenAI SDK client per API base for ten minutes, with its kept-alive
    connections open; SDK clients are reference cycles, so once dropped only the garbage collector
    closes those sockets, with a ``ResourceWarning: unclosed socket`` that a suite run with
    warnings as errors reports as a failure of whichever test happens to be running.
    """
    litellm = sys.modules.get("litellm")
    cache = getattr(litellm, "in_memory_llm_clients_cache", None)
    if cache is None:
        return
    for key, client in list(cache.cache_dict.items()):
        close = getattr(client, "close", None)
        mine = str(getattr(client, "base_url", "")).startswith(f"{url}/")
        if mine and callable(close) and not inspect.iscoroutinefunction(close):
            close()
            cache.delete_cache(key)


def _count(n: Any) -> int:
    """How many pictures a request asks for: OpenAI's ``n``, 1 when absent, at most 10."""
    try:
        return max(1, min(10, int(n)))
    except (TypeError, ValueError):
        return 1


def _partials(value: Any) -> int:
    """How many partials a stream asks for: OpenAI's ``partial_images``, 0 to 3."""
    try:
        return max(0, min(3, int(value)))
    except (TypeError, ValueError):
        return 0


def _sse(event: str, payload: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(payload)}\n\n".encode()


def _variant(prompt: str, index: int) -> str:
    return f"{prompt}\x00{index}" if index else prompt


class _Handler(BaseHTTPRequestHandler):
    owner: FakeImageProvider
    protocol_version = "HTTP/1.1"  # keep-alive, as the OpenAI SDK's pooled client expects

    def log_message(self, format: str, *args: Any) -> None:
        pass  # test output is for the tests

    def setup(self) -> None:
        super().setup()
        with self.owner._state.lock:
            self.owner._state.connections.add(self.connection)

    def finish(self) -> None:
        with self.owner._state.lock:
            self.owner._state.connections.discard(self.connection)
        super().finish()

    def do_POST(self) -> None:
        state = self.owner._state
        path = urlsplit(self.path).path.rstrip("/")
        if path not in ("/v1/images/generations", "/v1/chat/completions"):
            return self._error(404, "Not found")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            return self._error(400, "The body must be a JSON object")
        request = ReceivedRequest(self.path, parsed, dict(self.headers.items()))
        if path == "/v1/chat/completions":
            return self._describe(request)
        with state.lock:
            state.requests.append(request)
            wait = self.owner._refuse()
            if wait is None:
                behaviour = state.queue.pop(0) if state.queue else self.owner.default
        if wait is not None:
            body = json.dumps(Respond.rate_limited().error).encode()
            return self._send(429, body, headers={"Retry-After": f"{max(1, math.ceil(wait))}"})
        started = time.monotonic()
        contents: list[bytes] = []
        if parsed.get("stream") is True and behaviour.kind != "error":
            return self._stream(request, behaviour, started)
        if behaviour.kind != "error":
            # OpenAI's ``n``: that many pictures in one answer (1 to 10), each its own. Drawn
            # within the latency, not after it: ``latency`` is the time to the answer, as a real
            # provider's is, however many requests arrive together.
            contents = [
                behaviour.content
                if behaviour.content is not None
                else _prompt_png(_variant(request.prompt, index), self.owner.image_size)
                for index in range(_count(parsed.get("n")))
            ]
        delay = self.owner.latency + behaviour.hang - (time.monotonic() - started)
        if delay > 0:
            state.stopping.wait(delay)
        if state.stopping.is_set():
            self.close_connection = True  # the client sees a disconnect, not a wait
            return None
        if not contents:
            return self._send(behaviour.status, json.dumps(behaviour.error).encode())
        items = [self._item(request, picture, behaviour) for picture in contents]
        usage = {
            "input_tokens": 10,
            "output_tokens": 100,
            "total_tokens": 110,
            "input_tokens_details": {"text_tokens": 10, "image_tokens": 0},
        }
        answer = {"created": int(time.time()), "data": items, "usage": usage}
        return self._send(200, json.dumps(answer).encode())

    def _item(
        self, request: ReceivedRequest, content: bytes, behaviour: Behaviour
    ) -> dict[str, Any]:
        item: dict[str, Any] = {"revised_prompt": request.prompt}
        if behaviour.kind == "url":
            name = f"{uuid.uuid4()}.png"
            with self.owner._state.lock:
                self.owner._state.files[name] = (content, behaviour)
            item["url"] = f"{self.owner.url}/files/{name}"
        else:
            item["b64_json"] = base64.b64encode(content).decode()
        return item

    def _stream(self, request: ReceivedRequest, behaviour: Behaviour, started: float) -> None:
        """OpenAI's streamed generation: partials on :attr:`FakeImageProvider.partial_schedule`,
        then the picture at :attr:`FakeImageProvider.latency` (one picture: OpenAI streams n=1)."""
        owner, state = self.owner, self.owner._state
        latency = owner.latency + behaviour.hang
        final = behaviour.content
        if final is None:
            final = _prompt_png(request.prompt, owner.image_size)
        # A partial is the same colour at a quarter of the size: a test can tell it is one.
        quarter = (max(1, owner.image_size[0] // 4), max(1, owner.image_size[1] // 4))
        common = {
            "size": str(request.body.get("size", "auto")),
            "quality": str(request.body.get("quality", "auto")),
            "background": "opaque",
            "output_format": "png",
        }

        def event(kind: str, picture: bytes, **extra: Any) -> bytes:
            # OpenAI's image events differ only in their kind and one field of their own.
            name = f"image_generation.{kind}"
            b64 = base64.b64encode(picture).decode()
            payload = {"type": name, "b64_json": b64, "created_at": int(time.time()), **extra}
            return _sse(name, {**payload, **common})

        # Chunked, as OpenAI sends it: each event is a chunk a client can act on when it lands.
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            count = _partials(request.body.get("partial_images"))
            for index, fraction in enumerate(owner.partial_schedule[:count]):
                if state.stopping.wait(max(0.0, started + fraction * latency - time.monotonic())):
                    return
                partial = _prompt_png(request.prompt, quarter)
                self._chunk(event("partial_image", partial, partial_image_index=index))
            if behaviour.kind == "cut":
                return  # no last chunk: the client sees the body end short
            if behaviour.kind == "refuse":
                self._chunk(_sse("error", {"type": "error", **(behaviour.error or {})}))
                self._chunk(b"")
                return
            if state.stopping.wait(max(0.0, started + latency - time.monotonic())):
                return
            usage = {"input_tokens": 10, "output_tokens": 100, "total_tokens": 110}
            self._chunk(event("completed", final, usage=usage))
            self._chunk(b"")
        except _DISCONNECTS:
            pass

    def _chunk(self, data: bytes) -> None:
        """One chunk of a chunked body; an empty one ends it."""
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _describe(self, request: ReceivedRequest) -> None:
        """OpenAI's chat completion, whose message is the description: what LiteLLM's
        ``completion`` reads back from a vision model."""
        state = self.owner._state
        with state.lock:
            state.description_requests.append(request)
            queue = state.description_queue
            behaviour = queue.pop(0) if queue else self.owner.description
        delay = self.owner.latency + behaviour.hang
        if delay > 0:
            state.stopping.wait(delay)
        if state.stopping.is_set():
            self.close_connection = True
            return None
        if behaviour.kind == "error":
            return self._send(behaviour.status, json.dumps(behaviour.error).encode())
        text = behaviour.text if behaviour.text is not None else self.owner.description.text
        answer = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(request.body.get("model", "")),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text or ""},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 12, "total_tokens": 112},
        }
        return self._send(200, json.dumps(answer).encode())

    def do_GET(self) -> None:
        state = self.owner._state
        path = urlsplit(self.path).path
        with state.lock:
            served = state.files.get(path[len("/files/") :]) if path.startswith("/files/") else None
            if served is not None:
                state.file_requests += 1
        if served is None:
            return self._error(404, "Not found")
        content, behaviour = served
        if behaviour.redirect_to:
            return self._send(302, b"", "text/plain", {"Location": behaviour.redirect_to})
        if not behaviour.drip:
            return self._send(behaviour.status, content, behaviour.content_type)
        chunk, interval = max(behaviour.drip[0], 1), behaviour.drip[1]
        self.close_connection = True  # a drip may end early; never reuse its connection
        try:
            self._head(behaviour.status, len(content), behaviour.content_type)
            for start in range(0, len(content), chunk):
                if start and state.stopping.wait(interval):
                    return None
                self.wfile.write(content[start : start + chunk])
                self.wfile.flush()
        except _DISCONNECTS:
            pass
        return None

    def _error(self, status: int, message: str) -> None:
        self._send(status, json.dumps(Respond.error(status, message).error).encode())

    def _head(
        self, status: int, length: int, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        # A client that left before its answer ends this connection; _Server.handle_error keeps
        # that quiet.
        self._head(status, len(body), content_type, headers)
        self.wfile.write(body)


def _schedule(text: str) -> tuple[float, ...]:
    """``--partials-at 0.3,0.6``: fractions of the latency, each from 0 to 1."""
    try:
        fractions = tuple(float(part) for part in text.split(","))
    except ValueError:
        fractions = (-1.0,)
    if not all(0 <= fraction <= 1 for fraction in fractions):
        raise argparse.ArgumentTypeError(f"{text!r} is not fractions from 0 to 1, as 0.3,0.6")
    return fractions


def main(argv: list[str] | None = None, *, until: threading.Event | None = None) -> int:
    """``python -m page_images.testing --port 8900``: the fake provider as a development server.

    For a site's ``runserver`` and a worker started on their own: point ``LiteLLMBackend`` at the
    printed ``api_base``, with any ``api_key``, and every picture is made here, with no network.
    Runs until Ctrl-C (or until ``until`` is set, for tests).
    """
    parser = argparse.ArgumentParser(
        prog="python -m page_images.testing",
        description="Serve the fake OpenAI-style image provider on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=8900, help="port on 127.0.0.1 (8900)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per picture (0)")
    parser.add_argument("--size", default="256x256", help="picture size, WIDTHxHEIGHT (256x256)")
    parser.add_argument(
        "--partials-at",
        type=_schedule,
        default=FakeImageProvider.PARTIAL_SCHEDULE,
        help="when a stream sends its partials, as fractions of --latency (0.3,0.6,0.9)",
    )
    args = parser.parse_args(argv)
    width, _, height = args.size.lower().partition("x")
    if not (width.isdigit() and height.isdigit()):
        parser.error(f"--size {args.size!r} is not WIDTHxHEIGHT")
    provider = FakeImageProvider(
        image_size=(int(width), int(height)), latency=args.latency, port=args.port
    )
    provider.partial_schedule = args.partials_at
    try:
        provider.start()
    except OSError as exc:
        parser.error(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}")
    print(
        f"Fake image provider at {provider.api_base}\n"
        'PAGE_IMAGES = {"BACKEND": "page_images.backends.litellm.LiteLLMBackend", "OPTIONS": '
        f'{{"model": "openai/gpt-image-1", "api_base": "{provider.api_base}", '
        '"api_key": "fake"}}\nCtrl-C stops it.',
        flush=True,
    )
    try:
        (until or threading.Event()).wait()
    except KeyboardInterrupt:
        pass
    finally:
        provider.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover (what `python -m` runs; main() is tested)
    sys.exit(main())
