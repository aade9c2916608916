"""OpenAI's streamed image generation, read with ``requests``: the path LiteLLM does not offer.

LiteLLM (1.110) sends ``litellm.image_generation`` as one request and one answer: it drops
``stream`` and ``partial_images`` for OpenAI's image models, so the partial pictures the Images API
can send while it draws never reach us through it. This module speaks that one endpoint itself:
``POST {api_base}/images/generations`` with ``stream: true`` answers Server-Sent Events,
``image_generation.partial_image`` (``b64_json``, ``partial_image_index``) up to ``partial_images``
times, then ``image_generation.completed`` with the picture. It knows nothing of LiteLLM: the
backend maps the errors it raises (:class:`ProviderHTTPError`) as it maps LiteLLM's.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
from urllib3.exceptions import ReadTimeoutError

from page_images.backends.base import (
    GenerationTimeoutError,
    InvalidImageError,
    PreviewImage,
    TransientGenerationError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

PARTIAL_EVENT = "image_generation.partial_image"
COMPLETED_EVENT = "image_generation.completed"
#: The most partial pictures OpenAI sends (``partial_images`` is 0-3).
MAX_PARTIALS = 3
#: Seconds to wait for the connection; the read timeout is the backend's ``timeout``.
CONNECT_TIMEOUT = 10.0


class ProviderHTTPError(Exception):
    """The provider said no, in its own words: worded like LiteLLM's errors ("Error code: 429 -
    …") so one mapping turns both into ours."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"Error code: {status_code} - {message}")
        self.status_code = status_code
        self.message = str(self)


@dataclass(frozen=True)
class StreamedImage:
    """The completed event's picture and what came with it."""

    content: bytes
    content_type: str | None
    revised_prompt: str | None
    usage: dict[str, Any]


def _events(response: requests.Response) -> Iterator[tuple[str, str]]:
    """(event, data) pairs of an SSE body, per the HTML spec's parsing rules that matter here:
    ``data`` lines join with newlines, a blank line ends an event, comments are skipped."""
    event, data = "", list[str]()
    # chunk_size=None: each chunk as it lands. A fixed size would hold a small partial back until
    # that many bytes came, i.e. until the next event (over chunked encoding, as OpenAI streams).
    for line in response.iter_lines(chunk_size=None, decode_unicode=True):
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "", []
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    if data:
        yield event, "\n".join(data)


def _decode(b64: Any) -> bytes:
    if not isinstance(b64, str):
        raise ValueError("b64_json is not a string")
    return base64.b64decode(b64, validate=True)


def _content_type(payload: dict[str, Any]) -> str | None:
    output_format = payload.get("output_format")
    return f"image/{output_format}" if isinstance(output_format, str) else None


def _error_text(body: str) -> str:
    try:
        error = json.loads(body).get("error") or {}
    except (ValueError, AttributeError):
        return body.strip()[:500]
    return str(error.get("message") or error.get("code") or body)[:500] if error else body[:500]


def stream_image(
    *,
    url: str,
    api_key: str | None,
    body: dict[str, Any],
    timeout: float,
    on_preview: Callable[[PreviewImage], None],
) -> StreamedImage:
    """POST ``body`` (with ``stream`` set) to ``url``, hand each partial to ``on_preview``, and
    return the completed picture; raise one of our errors, or :class:`ProviderHTTPError`."""
    headers = {"Accept": "text/event-stream"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        with requests.post(
            url,
            json={**body, "stream": True},
            headers=headers,
            timeout=(CONNECT_TIMEOUT, timeout),
            stream=True,
        ) as response:
            if response.status_code >= 400:
                raise ProviderHTTPError(response.status_code, _error_text(response.text))
            return _read(response, on_preview)
    except requests.Timeout as exc:
        raise GenerationTimeoutError(detail=f"stream: {exc}") from exc
    except requests.ConnectionError as exc:
        # Once the body streams, requests reports a read timeout as a ConnectionError around
        # urllib3's ReadTimeoutError: the provider went quiet for ``timeout`` seconds.
        if exc.args and isinstance(exc.args[0], ReadTimeoutError):
            raise GenerationTimeoutError(detail=f"stream: {exc}") from exc
        raise TransientGenerationError(detail=f"stream: {type(exc).__name__}: {exc}") from exc
    except requests.RequestException as exc:
        raise TransientGenerationError(detail=f"stream: {type(exc).__name__}: {exc}") from exc


def _read(response: requests.Response, on_preview: Callable[[PreviewImage], None]) -> StreamedImage:
    for event, data in _events(response):
        try:
            payload = json.loads(data)
        except ValueError:
            continue  # a line we do not know ("[DONE]"): the stream goes on
        if not isinstance(payload, dict):
            continue
        kind = event or payload.get("type")
        if kind == "error":
            # OpenAI ends a stream with an error event when it refuses mid-way (its safety
            # system looks at partials too): a refusal of the request, hence 400.
            raise ProviderHTTPError(400, _error_text(data))
        if kind == PARTIAL_EVENT:
            try:
                content = _decode(payload.get("b64_json"))
            except (binascii.Error, ValueError):
                continue  # a broken preview costs the editor a preview, never the picture
            index = payload.get("partial_image_index")
            on_preview(
                PreviewImage(
                    content=content,
                    index=index if isinstance(index, int) else 0,
                    content_type=_content_type(payload),
                )
            )
        elif kind == COMPLETED_EVENT:
            try:
                content = _decode(payload.get("b64_json"))
            except (binascii.Error, ValueError) as exc:
                detail = f"completed b64_json does not decode: {exc}"
                raise InvalidImageError(detail=detail) from exc
            usage = payload.get("usage")
            return StreamedImage(
                content=content,
                content_type=_content_type(payload),
                revised_prompt=payload.get("revised_prompt"),
                usage=usage if isinstance(usage, dict) else {},
            )
    raise TransientGenerationError(detail="stream ended without image_generation.completed")
