"""The fake provider itself: over real HTTP, and with the real LiteLLM, since both rely on it."""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import struct
import sys
import threading
import time
from typing import Any

import pytest
import requests
from PIL import Image

from page_images.testing import FakeImageProvider, ReceivedRequest, Respond, png_bytes

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def fake():
    with FakeImageProvider(image_size=(32, 20)) as provider:
        yield provider


def generate(
    provider: FakeImageProvider, prompt: str = "a red fox", timeout: float = 10, **kwargs: Any
) -> requests.Response:
    return requests.post(
        f"{provider.api_base}/images/generations",
        json={"model": "gpt-image-1", "prompt": prompt},
        timeout=timeout,
        **kwargs,
    )


def decoded(response: requests.Response) -> bytes:
    return base64.b64decode(response.json()["data"][0]["b64_json"])


def test_png_bytes_is_a_real_png():
    image = Image.open(io.BytesIO(png_bytes(7, 5, (1, 2, 3))))
    assert (image.format, image.size, image.getpixel((0, 0))) == ("PNG", (7, 5), (1, 2, 3))


def test_b64_answer_is_a_png_of_image_size(fake):
    response = generate(fake)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert isinstance(body["created"], int)
    assert body["data"][0]["revised_prompt"] == "a red fox"
    assert body["usage"] == {
        "input_tokens": 10,
        "output_tokens": 100,
        "total_tokens": 110,
        "input_tokens_details": {"text_tokens": 10, "image_tokens": 0},
    }
    image = Image.open(io.BytesIO(decoded(response)))
    assert (image.format, image.size) == ("PNG", (32, 20))


def test_the_image_depends_on_the_prompt_only(fake):
    fox, fox_again, owl = (decoded(generate(fake, p)) for p in ("a fox", "a fox", "an owl"))
    assert fox == fox_again
    assert fox != owl
    pixel = [Image.open(io.BytesIO(png)).convert("RGB").getpixel((0, 0)) for png in (fox, owl)]
    assert pixel[0] != pixel[1]


@pytest.mark.parametrize(("n", "count"), [(3, 3), (1, 1), (None, 1), ("many", 1), (0, 1), (50, 10)])
def test_n_asks_for_that_many_pictures_each_its_own(fake, n, count):
    response = requests.post(
        f"{fake.api_base}/images/generations",
        json={"model": "gpt-image-1", "prompt": "a fox", "n": n},
        timeout=10,
    )
    pictures = [base64.b64decode(item["b64_json"]) for item in response.json()["data"]]
    assert len(pictures) == len(set(pictures)) == count
    assert pictures[0] == decoded(generate(fake, "a fox"))  # the first is the prompt's own


def test_n_pictures_as_urls_or_given_bytes(fake):
    fake.push(Respond.url(), Respond.b64(content=png_bytes(4, 4)))
    body = {"model": "gpt-image-1", "prompt": "a fox", "n": 2}
    urls = requests.post(f"{fake.api_base}/images/generations", json=body, timeout=10).json()
    assert len({item["url"] for item in urls["data"]}) == 2
    given = requests.post(f"{fake.api_base}/images/generations", json=body, timeout=10).json()
    assert [base64.b64decode(item["b64_json"]) for item in given["data"]] == [png_bytes(4, 4)] * 2


def test_b64_content_bad_bytes_and_oversize(fake):
    fake.push(Respond.b64(b"exact"), Respond.bad_bytes(), Respond.oversize(5000))
    assert decoded(generate(fake)) == b"exact"
    assert decoded(generate(fake)) == b"this is not an image"
    oversize = decoded(generate(fake))
    assert oversize.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(oversize) > 5000


def test_url_answer_serves_the_file(fake):
    fake.push(Respond.url(), Respond.url(content=b"GIF89a...", content_type="image/gif"))
    first = generate(fake, "a fox").json()["data"][0]["url"]
    second = generate(fake, "a fox").json()["data"][0]["url"]
    assert first.startswith(f"{fake.url}/files/")
    assert first.endswith(".png")
    assert first != second
    png = requests.get(first, timeout=10)
    assert (png.status_code, png.headers["Content-Type"]) == (200, "image/png")
    assert png.content == decoded(generate(fake, "a fox"))
    gif = requests.get(second, timeout=10)
    assert (gif.headers["Content-Type"], gif.content) == ("image/gif", b"GIF89a...")
    assert fake.file_requests == 2


def test_url_file_status_and_redirect(fake):
    fake.push(Respond.url(status=403), Respond.url(redirect_to="http://127.0.0.1:9/elsewhere"))
    forbidden = requests.get(generate(fake).json()["data"][0]["url"], timeout=10)
    assert forbidden.status_code == 403
    moved = requests.get(generate(fake).json()["data"][0]["url"], allow_redirects=False, timeout=10)
    assert moved.status_code == 302
    assert moved.headers["Location"] == "http://127.0.0.1:9/elsewhere"


def test_drip_sends_the_file_in_timed_chunks(fake):
    content = bytes(range(50))
    fake.push(Respond.url(content=content, drip=(10, 0.1)))
    started = time.monotonic()
    with requests.get(generate(fake).json()["data"][0]["url"], stream=True, timeout=10) as r:
        assert r.headers["Content-Length"] == "50"
        pieces = []
        while piece := r.raw.read1(1000):
            pieces.append(piece)
    assert time.monotonic() - started >= 0.35
    assert b"".join(pieces) == content
    assert len(pieces) >= 2
    assert max(len(piece) for piece in pieces) <= 10


def test_drip_ends_when_the_client_leaves_or_the_server_stops(capfd):
    with FakeImageProvider() as provider:
        provider.push(Respond.url(content=b"x" * 100, drip=(1, 0.05)))
        url = generate(provider).json()["data"][0]["url"]
        with requests.get(url, stream=True, timeout=10) as r:
            assert r.raw.read1(1) == b"x"
        # The client left: the server's next writes fail, and that must stay quiet.
        time.sleep(0.3)
        provider.push(Respond.url(drip=(1, 60)))
        url = generate(provider).json()["data"][0]["url"]
        slow = requests.get(url, stream=True, timeout=10)
        started = time.monotonic()
    assert time.monotonic() - started < 2
    slow.close()
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize(
    ("answer", "status", "code", "kind"),
    [
        (Respond.rate_limited(), 429, "rate_limit_exceeded", "requests"),
        (Respond.server_error(), 500, None, "server_error"),
        (Respond.unavailable(), 503, None, "server_error"),
        (Respond.content_policy(), 400, "content_policy_violation", "image_generation_user_error"),
        (Respond.bad_api_key(), 401, "invalid_api_key", "invalid_request_error"),
        (Respond.error(418, "Teapot", code="tea"), 418, "tea", "invalid_request_error"),
    ],
)
def test_error_answers_have_openai_shape(fake, answer, status, code, kind):
    fake.push(answer)
    response = generate(fake)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["code"], error["type"], error["param"]) == (code, kind, None)
    assert error["message"]


def test_content_policy_and_bad_key_messages():
    policy = Respond.content_policy().error
    assert policy is not None
    assert policy["error"]["message"] == (
        "Your request was rejected as a result of our safety system."
    )
    key = Respond.bad_api_key().error
    assert key is not None
    assert key["error"]["message"] == "Incorrect API key provided."


def test_queue_is_fifo_then_default(fake):
    fake.push(Respond.rate_limited(), Respond.server_error())
    fake.push(Respond.unavailable())
    assert [generate(fake).status_code for _ in range(4)] == [429, 500, 503, 200]
    fake.default = Respond.bad_api_key()
    assert [generate(fake).status_code for _ in range(2)] == [401, 401]


def test_requests_are_recorded(fake):
    generate(fake, "first", headers={"Authorization": "Bearer sk-x"})
    generate(fake, "second")
    assert fake.generation_calls == 2
    first, second = fake.requests
    assert isinstance(first, ReceivedRequest)
    assert (first.prompt, second.prompt) == ("first", "second")
    assert first.path == "/v1/images/generations"
    assert first.body == {"model": "gpt-image-1", "prompt": "first"}
    assert first.headers["Authorization"] == "Bearer sk-x"
    with pytest.raises(AttributeError):
        first.path = "/elsewhere"  # type: ignore[misc]


def test_unknown_paths_and_bad_bodies(fake):
    post = requests.post(f"{fake.url}/v1/embeddings", json={}, timeout=10)
    assert (post.status_code, "error" in post.json()) == (404, True)
    assert requests.get(f"{fake.url}/files/nope.png", timeout=10).status_code == 404
    assert requests.get(f"{fake.url}/", timeout=10).status_code == 404
    url = f"{fake.api_base}/images/generations"
    assert requests.post(url, data=b"not json", timeout=10).status_code == 400
    assert requests.post(url, json=[1, 2], timeout=10).status_code == 400
    assert fake.generation_calls == 0
    assert fake.file_requests == 0


def test_latency_delays_every_answer(fake):
    fake.latency = 0.3
    started = time.monotonic()
    generate(fake)
    generate(fake)
    assert time.monotonic() - started >= 0.6


def test_reset(fake):
    fake.push(Respond.rate_limited())
    fake.default = Respond.server_error()
    generate(fake)
    fake.latency = 5
    fake.reset()
    assert (fake.generation_calls, fake.requests, fake.file_requests) == (0, [], 0)
    assert fake.latency == 0
    assert generate(fake).status_code == 200


def test_hang_answers_after_its_time(fake):
    fake.push(Respond.hang(0.3))
    started = time.monotonic()
    response = generate(fake)
    assert time.monotonic() - started >= 0.3
    assert decoded(response).startswith(b"\x89PNG")


def test_stop_ends_a_hang_at_once(capfd):
    provider = FakeImageProvider().start()
    provider.push(Respond.hang(60))
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(generate(provider, timeout=30))
        except requests.RequestException as error:
            outcome.append(error)

    client = threading.Thread(target=call, daemon=True)
    client.start()
    deadline = time.monotonic() + 5
    while provider.generation_calls == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert provider.generation_calls == 1
    started = time.monotonic()
    provider.stop()
    assert time.monotonic() - started < 2
    client.join(5)
    assert not client.is_alive(), "the waiting client must see a disconnect, not keep waiting"
    assert isinstance(outcome[0], requests.ConnectionError)
    assert capfd.readouterr().err == ""


def test_stop_with_an_idle_kept_alive_connection():
    provider = FakeImageProvider().start()
    with requests.Session() as session:
        session.post(f"{provider.api_base}/images/generations", json={"prompt": "x"}, timeout=10)
        started = time.monotonic()
        provider.stop()
        assert time.monotonic() - started < 2
    provider.stop()  # twice is harmless
    with pytest.raises(RuntimeError):
        FakeImageProvider().url  # noqa: B018


def test_binds_loopback_only(fake):
    host, port = fake.url.removeprefix("http://").split(":")
    assert host == "127.0.0.1"
    assert fake.api_base == f"http://127.0.0.1:{port}/v1"
    with socket.create_connection(("127.0.0.1", int(port)), timeout=5):
        pass


def test_real_litellm_against_the_fake(fake):
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    def call() -> Any:
        return litellm.image_generation(
            prompt="a red fox",
            model="openai/gpt-image-1",
            api_base=fake.api_base,
            api_key="sk-test",
            size="64x64",
            max_retries=0,
            timeout=10,
        )

    png = base64.b64decode(call().data[0].b64_json)
    assert Image.open(io.BytesIO(png)).size == (32, 20)
    assert png == decoded(generate(fake, "a red fox"))
    (sent, _) = fake.requests
    assert sent.path == "/v1/images/generations"
    assert sent.body["prompt"] == "a red fox"
    assert sent.body["size"] == "64x64"
    assert sent.headers.get("Authorization", sent.headers.get("authorization")) == "Bearer sk-test"

    fake.push(Respond.rate_limited())
    with pytest.raises(litellm.exceptions.RateLimitError):
        call()
    assert fake.generation_calls == 3, "max_retries=0: one call, no retry"

    fake.push(Respond.url())
    url = call().data[0].url
    assert url.startswith(f"{fake.url}/files/")
    file = requests.get(url, timeout=10)
    assert (file.status_code, file.headers["Content-Type"]) == (200, "image/png")
    assert file.content == png


def test_stop_closes_the_connections_litellm_pooled_for_it():
    """LiteLLM keeps its client (and a kept-alive socket) for ten minutes; dropped, the garbage
    collector would close it with a ResourceWarning, an error under -W error (CI saw one)."""
    import gc
    import warnings

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    with FakeImageProvider() as provider:
        litellm.image_generation(
            prompt="a red fox",
            model="openai/gpt-image-1",
            api_base=provider.api_base,
            api_key="sk-test",
            max_retries=0,
            timeout=10,
        )
        mine = f"{provider.url}/"
        pooled = litellm.in_memory_llm_clients_cache.cache_dict.values
        assert any(str(getattr(c, "base_url", "")).startswith(mine) for c in pooled())
    assert not any(str(getattr(c, "base_url", "")).startswith(mine) for c in pooled())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        gc.collect()
    assert [w for w in caught if "unclosed" in str(w.message)] == []


def test_stop_without_litellm_loaded_has_no_clients_to_close(monkeypatch):
    # A site without the litellm extra (LocalBackend, a backend of its own) uses the fake too.
    monkeypatch.delitem(sys.modules, "litellm", raising=False)
    provider = FakeImageProvider().start()
    generate(provider)
    provider.stop()
    assert "litellm" not in sys.modules
    with pytest.raises(requests.ConnectionError):
        generate(provider)


def test_the_fake_provider_runs_as_a_dev_server_on_a_given_port(capsys):
    import socket
    import threading

    import requests

    from page_images.testing import main

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stop = threading.Event()
    server = threading.Thread(
        target=main,
        args=(["--port", str(port), "--size", "32x16", "--partials-at", "0,0.5"],),
        kwargs={"until": stop},
    )
    server.start()
    try:
        deadline = time.monotonic() + 5
        while f"127.0.0.1:{port}" not in capsys.readouterr().out:
            assert time.monotonic() < deadline, "the server did not say where it listens"
            time.sleep(0.05)
        answer = requests.post(
            f"http://127.0.0.1:{port}/v1/images/generations",
            json={"model": "gpt-image-1", "prompt": "a fox"},
            timeout=5,
        )
        picture = base64.b64decode(answer.json()["data"][0]["b64_json"])
        with Image.open(io.BytesIO(picture)) as image:
            assert image.size == (32, 16)
    finally:
        stop.set()
        server.join(timeout=5)
    assert not server.is_alive()


def test_the_dev_server_says_what_is_wrong_with_its_arguments(capsys):
    from page_images.testing import main

    with pytest.raises(SystemExit):
        main(["--size", "huge"])
    assert "WIDTHxHEIGHT" in capsys.readouterr().err
    for schedule in ("0.3,x", "0.5,1.5"):
        with pytest.raises(SystemExit):
            main(["--partials-at", schedule])
        assert "fractions from 0 to 1" in capsys.readouterr().err


# --- Clients that leave, requests that break, the dev server's exits (branch `coverage`) ---------


def test_a_client_that_leaves_before_its_answer_is_forgotten_quietly(capfd):
    with FakeImageProvider(latency=0.2) as provider:
        body = b'{"model": "gpt-image-1", "prompt": "a fox"}'
        host, port = provider.url.removeprefix("http://").split(":")
        client = socket.create_connection((host, int(port)), timeout=5)
        client.sendall(
            b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        # Closed with a reset, as a client killed mid-call: the answer's first write fails.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        time.sleep(0.3)  # the latency, then the failed write
        provider.latency = 0
        assert decoded(generate(provider)).startswith(b"\x89PNG")  # still serving
    assert capfd.readouterr().err == ""


def test_a_request_that_breaks_the_handler_is_reported(fake, capfd):
    # Unlike a client hanging up, a request the fake cannot handle is a bug in a test's client:
    # its traceback is shown.
    host, port = fake.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as client:
        client.sendall(
            b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nContent-Length: two\r\n\r\n{}"
        )
        assert client.recv(1024) == b""  # no answer: the connection is closed
    err = capfd.readouterr().err
    assert "ValueError" in err
    assert "invalid literal for int()" in err


def test_the_dev_server_says_when_its_port_is_taken(capsys):
    from page_images.testing import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit):
            main(["--port", str(port)], until=threading.Event())
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_the_dev_server_stops_cleanly_on_ctrl_c(capsys):
    from page_images.testing import main

    class CtrlC(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            raise KeyboardInterrupt

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["--port", str(port)], until=CtrlC()) == 0
    assert f"127.0.0.1:{port}" in capsys.readouterr().out
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 1):
        pass  # stopped: the port is free again


def describe(provider: FakeImageProvider, timeout: float = 10) -> requests.Response:
    return requests.post(
        f"{provider.api_base}/chat/completions",
        json={
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "plain text is not a part"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Describe it"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
                    ],
                },
            ],
        },
        timeout=timeout,
    )


def test_the_chat_endpoint_describes(fake):
    answer = describe(fake).json()
    assert answer["choices"][0]["message"]["content"] == FakeImageProvider.DESCRIPTION
    assert answer["model"] == "gpt-4o-mini"
    fake.push_description(Respond.text("A fox"), Respond.content_policy())
    assert describe(fake).json()["choices"][0]["message"]["content"] == "A fox"
    refused = describe(fake)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "content_policy_violation"
    (call, *_) = fake.description_requests
    assert (call.text, call.image_urls) == ("Describe it", ["data:image/png;base64,AA=="])
    assert fake.generation_calls == 0  # kept apart from the image calls
    fake.push_description(Respond.rate_limited())
    fake.reset()
    assert fake.description_requests == []
    assert describe(fake).status_code == 200


def test_a_description_of_ones_own():
    with FakeImageProvider(description="Ein Quadrat") as provider:
        provider.push_description(Respond.hang(0.1))
        assert describe(provider).json()["choices"][0]["message"]["content"] == "Ein Quadrat"


def test_stop_ends_a_hanging_description():
    provider = FakeImageProvider().start()
    provider.push_description(Respond.hang(60))
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(describe(provider, timeout=30))
        except requests.RequestException as error:
            outcome.append(error)

    client = threading.Thread(target=call, daemon=True)
    client.start()
    deadline = time.monotonic() + 5
    while not provider.description_requests and time.monotonic() < deadline:
        time.sleep(0.01)
    provider.stop()
    client.join(5)
    assert isinstance(outcome[0], requests.ConnectionError)


def _stream_events(response: requests.Response) -> list[tuple[float, str, dict[str, Any]]]:
    """(seconds since the request, event, data) of each SSE event, read as it lands."""
    started, events, name = time.monotonic(), [], ""
    for line in response.iter_lines(chunk_size=None, decode_unicode=True):
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((time.monotonic() - started, name, json.loads(line[6:])))
    return events


def stream(provider: FakeImageProvider, **body: Any) -> requests.Response:
    return requests.post(
        f"{provider.api_base}/images/generations",
        json={"model": "gpt-image-1", "prompt": "a red fox", "stream": True, **body},
        timeout=10,
        stream=True,
    )


def test_a_stream_sends_partials_then_the_picture_in_openais_wire_format(fake):
    with stream(fake, partial_images=2, size="1024x1024", quality="low") as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        assert response.headers["Transfer-Encoding"] == "chunked"
        events = _stream_events(response)
    assert [name for _, name, _ in events] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    partials, (_, _, completed) = events[:2], events[2]
    assert [data["partial_image_index"] for _, _, data in partials] == [0, 1]
    for _, name, data in events:
        assert data["type"] == name
        assert (data["size"], data["quality"], data["output_format"]) == ("1024x1024", "low", "png")
    with Image.open(io.BytesIO(base64.b64decode(partials[0][2]["b64_json"]))) as picture:
        assert picture.size == (8, 5)  # a quarter of image_size: visibly a partial
    final = base64.b64decode(completed["b64_json"])
    assert final == decoded(generate(fake))  # the same picture an answer without stream gives
    assert completed["usage"]["total_tokens"] == 110


@pytest.mark.parametrize(("asked", "sent"), [(None, 0), (0, 0), (1, 1), (3, 3), (9, 3), ("x", 0)])
def test_a_stream_sends_as_many_partials_as_asked_up_to_the_schedule(fake, asked, sent):
    with stream(fake, partial_images=asked) as response:
        names = [name for _, name, _ in _stream_events(response)]
    assert names == ["image_generation.partial_image"] * sent + ["image_generation.completed"]


def test_partials_land_on_the_schedule_each_as_it_is_sent(fake):
    fake.latency = 1.0
    fake.partial_schedule = (0.3, 0.6)
    with stream(fake, partial_images=3) as response:
        times = [at for at, _, _ in _stream_events(response)]
    assert len(times) == 3
    assert 0.25 <= times[0] <= 0.5, times
    assert 0.55 <= times[1] <= 0.8, times
    assert times[2] >= 0.95, times  # the clock here starts after the server's
    fake.reset()
    assert fake.partial_schedule == FakeImageProvider.PARTIAL_SCHEDULE


def test_a_stream_can_be_cut_or_refused_after_its_partials(fake):
    fake.push(Respond.refuse_stream(), Respond.cut_stream())
    with stream(fake, partial_images=1) as response:
        events = _stream_events(response)
    assert [name for _, name, _ in events] == ["image_generation.partial_image", "error"]
    assert events[1][2]["error"]["code"] == "moderation_blocked"
    with stream(fake, partial_images=1) as response, pytest.raises(requests.RequestException):
        _stream_events(response)


def test_an_error_answer_to_a_stream_is_plain_json(fake):
    fake.push(Respond.rate_limited())
    with stream(fake, partial_images=1) as response:
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize("schedule", [(0.5,), (0.0,)])  # stopped before the partial, or after
def test_a_stream_ends_when_the_server_stops(fake, schedule):
    fake.latency = 10.0
    fake.partial_schedule = schedule
    fake.push(Respond.b64(png_bytes(4, 4)))
    with stream(fake, partial_images=1) as response:
        threading.Timer(0.2, fake.stop).start()
        started = time.monotonic()
        with pytest.raises(requests.RequestException):
            _stream_events(response)
    assert time.monotonic() - started < 5


def test_a_client_that_leaves_mid_stream_leaves_the_provider_serving(fake, capfd):
    fake.latency = 0.6
    fake.partial_schedule = (0.0, 0.2, 0.4)
    with stream(fake, partial_images=3) as response:
        assert response.raw.read1(1)
    # The client left: the server's next partials fail to send, and that must stay quiet.
    time.sleep(0.8)
    assert generate(fake).status_code == 200
    assert "Traceback" not in capfd.readouterr().err
