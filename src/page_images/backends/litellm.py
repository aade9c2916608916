"""The production backend: any image model LiteLLM can reach (OpenAI, Azure, Vertex, Bedrock…).

LiteLLM is imported here and only when a picture is actually asked for: the import costs seconds and
~180 MB, which a web process must never pay. Its own retries are switched off (``max_retries=0``) so
Celery alone decides when to try again, and its exceptions are mapped onto our hierarchy so the task
can tell "retry later" from "tell the editor now".
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email.utils
import importlib.util
import os
import re
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.core.checks import CheckMessage, Error, Warning
from django.utils.translation import gettext, gettext_noop

from page_images.backends.base import (
    BaseBackend,
    ContentPolicyError,
    GeneratedImage,
    GenerationError,
    GenerationTimeoutError,
    ImageRequest,
    InvalidImageError,
    PermanentGenerationError,
    PreviewImage,
    ProviderAuthenticationError,
    TransientGenerationError,
    UnsupportedAspectRatioError,
)
from page_images.download import download_image
from page_images.exceptions import MissingDependencyError
from page_images.wording import CONTENT_POLICY_REFUSAL, with_reason

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

#: Models that take only a fixed list of sizes, by the start of their name: what each ratio
#: asks for (OpenAI's image API, December 2026).
FIXED_SIZES: dict[str, dict[str, tuple[int, int]]] = {
    "gpt-image": {"1:1": (1024, 1024), "3:2": (1536, 1024), "2:3": (1024, 1536)},
    "dall-e-3": {"1:1": (1024, 1024), "7:4": (1792, 1024), "4:7": (1024, 1792)},
    "dall-e-2": {"1:1": (1024, 1024)},
}
#: Models that make one picture per call (``n`` must be 1): variants are separate calls.
ONE_PER_CALL = ("dall-e-3",)

#: Models that stream partial pictures, by the start of their name, and the providers (LiteLLM's
#: prefix) whose endpoint speaks OpenAI's stream: "" is a bare name, which LiteLLM sends to OpenAI.
STREAMING_MODELS = ("gpt-image",)
STREAMING_PROVIDERS = ("", "openai")
#: Where a bare or ``openai/`` model goes when no ``api_base`` says otherwise.
OPENAI_API_BASE = "https://api.openai.com/v1"

#: Options the backend itself sets: a site must not override them.
RESERVED_OPTIONS = frozenset({"prompt", "size", "quality", "n", "max_retries", "num_retries"})

#: Options that mean something to an image endpoint only: a backend built from the image
#: OPTIONS to describe pictures (ALT_TEXT) does not send them to a chat model, which would refuse.
IMAGE_ONLY_OPTIONS = frozenset(
    {
        "style",
        "background",
        "output_format",
        "output_compression",
        "moderation",
        "response_format",
        "input_fidelity",
        "partial_images",
    }
)

_CONTENT_POLICY = re.compile(
    r"content[_ ]policy|safety system|moderation_blocked|safety_violation", re.I
)
_PROVIDER_TEXT = re.compile(r"Error code: \d+ - (.*)$", re.S)


def import_litellm() -> ModuleType:
    """Import LiteLLM the only safe way: with its cost map read locally, not from the network."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError as exc:
        raise MissingDependencyError("litellm", "litellm") from exc
    return litellm


def provider_text(exc: BaseException) -> str:
    """The provider's own sentence from a LiteLLM error, without LiteLLM's prefixes."""
    message = str(getattr(exc, "message", "") or exc)
    match = _PROVIDER_TEXT.search(message)
    return (match.group(1) if match else message).strip()


def retry_after(exc: BaseException) -> float | None:
    """The seconds a 429's ``Retry-After`` (or OpenAI's ``retry-after-ms``) asks for, if any.

    LiteLLM keeps the provider's headers on its error (``litellm_response_headers``); the
    OpenAI SDK's error has the HTTP response itself. An HTTP date is read as well as seconds.
    """
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    if not headers:
        return None
    try:
        millis = headers.get("retry-after-ms")
        if millis is not None:
            return max(0.0, float(millis) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())
    except (TypeError, ValueError, AttributeError):
        return None


def map_error(exc: Exception) -> Exception:
    """Turn a LiteLLM/OpenAI exception into one of ours; return anything else unchanged."""
    if isinstance(exc, GenerationError):
        return exc
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    text = provider_text(exc)
    detail = f"{name} {status}: {text}" if status else f"{name}: {text}"
    if name == "ContentPolicyViolationError" or (status == 400 and _CONTENT_POLICY.search(text)):
        return ContentPolicyError(with_reason(CONTENT_POLICY_REFUSAL, text), detail=detail)
    if name in {"AuthenticationError", "PermissionDeniedError"} or status in {401, 403}:
        return ProviderAuthenticationError(detail=detail)
    if name == "Timeout" or status == 408:
        return GenerationTimeoutError(detail=detail)
    if name == "RateLimitError" or status == 429:
        return TransientGenerationError(
            gettext_noop(
                "The image service is rate-limiting this site. Try again in a few minutes."
            ),
            detail=detail,
            retry_after=retry_after(exc),
        )
    if name == "APIConnectionError" or (isinstance(status, int) and status >= 500):
        return TransientGenerationError(detail=detail)
    if name == "UnsupportedParamsError":
        return PermanentGenerationError(
            gettext_noop(
                "The image model does not accept the site's image settings. Ask an administrator."
            ),
            detail=detail,
        )
    if status is not None or type(exc).__module__.split(".")[0] in {"litellm", "openai"}:
        return PermanentGenerationError(detail=detail)
    return exc


def _cost(response: Any) -> Decimal | None:
    hidden = getattr(response, "_hidden_params", None) or {}
    value = hidden.get("response_cost")
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


class LiteLLMBackend(BaseBackend):
    """Calls ``litellm.image_generation``, and ``litellm.completion`` to write alt text.

    Options: ``model`` (required, e.g. ``"openai/gpt-image-1"``), ``api_key``, ``api_base``,
    ``api_version``, ``timeout`` (seconds for one provider call, default 240: keep it under the
    task's soft time limit), and any other keyword LiteLLM passes to the provider (``style``,
    ``background``, ``output_format``…).
    """

    def __init__(
        self,
        *,
        model: str = "",
        api_key: str | None = None,
        api_base: str | None = None,
        api_version: str | None = None,
        timeout: float = 240.0,
        **provider_options: Any,
    ) -> None:
        super().__init__(model=model, api_base=api_base, timeout=timeout, **provider_options)
        self.model = model
        self.api_key = api_key
        self.api_base = api_base
        self.api_version = api_version
        self.timeout = float(timeout)
        self.provider_options = provider_options

    def check(self) -> list[CheckMessage]:
        messages: list[CheckMessage] = []
        if importlib.util.find_spec("litellm") is None:
            messages.append(
                Error(
                    gettext(
                        "PAGE_IMAGES['BACKEND'] is LiteLLMBackend, but litellm is not installed."
                    ),
                    hint='pip install "django-page-images[litellm]"',
                    id="page_images.E020",
                )
            )
        if not self.model:
            messages.append(
                Error(
                    gettext("LiteLLMBackend needs PAGE_IMAGES['OPTIONS']['model']."),
                    hint=gettext("For example 'openai/gpt-image-1'."),
                    id="page_images.E021",
                )
            )
        reserved = sorted(RESERVED_OPTIONS & set(self.provider_options))
        if reserved:
            messages.append(
                Error(
                    gettext(
                        "PAGE_IMAGES['OPTIONS'] sets %(options)s, which LiteLLMBackend controls "
                        "itself."
                    )
                    % {"options": ", ".join(reserved)},
                    hint=gettext(
                        "Set SIZE and QUALITY at the top level of PAGE_IMAGES; retries belong "
                        "to Celery (MAX_RETRIES)."
                    ),
                    id="page_images.E022",
                )
            )
        if "response_format" in self.provider_options and "gpt-image" in self.model:
            messages.append(
                Warning(
                    gettext("LiteLLM rejects 'response_format' for OpenAI gpt-image models."),
                    hint=gettext(
                        "Remove it from PAGE_IMAGES['OPTIONS']: these models answer base64."
                    ),
                    id="page_images.W020",
                )
            )
        return messages

    def prepare(self) -> None:
        # Paid once in the worker's parent, before it forks its pool: without this the first job
        # of every pool process spends seconds importing, inside its time limit.
        import_litellm()
        # LiteLLM's first call builds an HTTP client, and so imports httpx's transport (httpcore,
        # h11), under the import lock every other thread of the pool then waits on: a paced call
        # held there arrives late, and late calls bunched together can exceed the provider's
        # limit (page_images.pacing's margin). Built once here, the first call is as quick as
        # the next.
        import httpx

        httpx.Client().close()

    def _sizes(self) -> dict[str, tuple[int, int]] | None:
        name = self.model.rsplit("/", 1)[-1]
        for prefix, sizes in FIXED_SIZES.items():
            if name.startswith(prefix):
                return sizes
        return None

    def size_for(self, aspect_ratio: str, size: tuple[int, int]) -> tuple[int, int]:
        """The model's own size for the ratio where it takes a fixed list (OpenAI's models)."""
        sizes = self._sizes()
        if sizes is None:
            return super().size_for(aspect_ratio, size)
        if aspect_ratio not in sizes:
            # Said to the editor who chose the shape (specs.py), in the request's language.
            raise UnsupportedAspectRatioError(
                gettext("%(model)s cannot draw the aspect ratio %(ratio)s; it draws %(sizes)s.")
                % {"model": self.model, "ratio": aspect_ratio, "sizes": ", ".join(sizes)}
            )
        return sizes[aspect_ratio]

    def generate_variants(self, request: ImageRequest) -> list[GeneratedImage]:
        """One call with ``n`` where the model makes several at once, else one call each."""
        if request.n == 1 or self.model.rsplit("/", 1)[-1].startswith(ONE_PER_CALL):
            return super().generate_variants(request)
        return self._call(request, request.n)

    def generate(self, request: ImageRequest) -> GeneratedImage:
        return self._call(request, 1)[0]

    @property
    def streams_previews(self) -> bool:
        """Whether the model can send partial pictures: OpenAI's gpt-image models, reached
        directly or through an endpoint that speaks OpenAI's API (``api_base``)."""
        provider, _, name = self.model.rpartition("/")
        return provider in STREAMING_PROVIDERS and name.startswith(STREAMING_MODELS)

    def generate_with_previews(
        self,
        request: ImageRequest,
        on_preview: Callable[[PreviewImage], None],
        *,
        partials: int,
    ) -> GeneratedImage:
        """Stream the picture with ``partials`` (1-3) previews where the model can; otherwise, or
        with ``partials`` 0, the plain :meth:`generate` through LiteLLM.

        The stream bypasses LiteLLM, which cannot ask for partials (:mod:`.openai_stream`), so the
        cost LiteLLM would have reported comes from the price table (``PRICES``) instead.
        """
        if partials < 1 or not self.streams_previews:
            return self.generate(request)
        from page_images.backends.openai_stream import MAX_PARTIALS, stream_image
        from page_images.pricing import unit_price

        body: dict[str, Any] = {
            key: value
            for key, value in self.provider_options.items()
            if key in IMAGE_ONLY_OPTIONS and key not in {"response_format", "partial_images"}
        }
        body.update(
            model=self.model.rpartition("/")[2],
            prompt=request.prompt,
            size=request.size,
            n=1,
            partial_images=min(partials, MAX_PARTIALS),
        )
        if request.quality:
            body["quality"] = request.quality
        api_base = (self.api_base or OPENAI_API_BASE).rstrip("/")
        try:
            streamed = stream_image(
                url=f"{api_base}/images/generations",
                api_key=self.api_key or os.environ.get("OPENAI_API_KEY"),
                body=body,
                timeout=self.timeout,
                on_preview=on_preview,
            )
        except Exception as exc:
            raise map_error(exc) from exc
        return GeneratedImage(
            content=streamed.content,
            content_type=streamed.content_type,
            model=self.model,
            cost=unit_price(self.model, request.size, request.quality),
            revised_prompt=streamed.revised_prompt,
            metadata={"streamed": True, "usage": streamed.usage},
        )

    def _connection(self) -> dict[str, Any]:
        """Where and as whom to call: the same for pictures and descriptions."""
        keys = ("api_key", "api_base", "api_version")
        return {key: getattr(self, key) for key in keys if getattr(self, key)}

    def _call(self, request: ImageRequest, n: int) -> list[GeneratedImage]:
        litellm = import_litellm()
        kwargs: dict[str, Any] = {
            **self.provider_options,
            "prompt": request.prompt,
            "model": self.model,
            "size": request.size,
            "n": n,
            "max_retries": 0,
            "timeout": self.timeout,
        }
        if request.quality:
            kwargs["quality"] = request.quality
        kwargs.update(self._connection())
        try:
            response = litellm.image_generation(**kwargs)
        except Exception as exc:
            raise map_error(exc) from exc
        return self._results(response, n)

    def describe(self, image: bytes, content_type: str, *, language: str, prompt: str) -> str:
        """Ask the (vision) model for alt text: one chat message with the instruction and the
        picture as a ``data:`` URI, so the provider never fetches anything from the site."""
        litellm = import_litellm()
        data = base64.b64encode(image).decode("ascii")
        kwargs: dict[str, Any] = {
            key: value
            for key, value in self.provider_options.items()
            if key not in IMAGE_ONLY_OPTIONS and key not in RESERVED_OPTIONS
        }
        kwargs.update(
            model=self.model,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": prompt},
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:{content_type};base64,{data}"},
                        },
                    ],
                }
            ],
            max_retries=0,
            timeout=self.timeout,
        )
        kwargs.update(self._connection())
        try:
            response = litellm.completion(**kwargs)
        except Exception as exc:
            raise map_error(exc) from exc
        choices = getattr(response, "choices", None) or []
        text = getattr(getattr(choices[0], "message", None), "content", None) if choices else None
        if not isinstance(text, str) or not text.strip():
            raise PermanentGenerationError(
                gettext_noop("The model answered without a description."),
                detail="no message content",
            )
        return text.strip()

    def _results(self, response: Any, n: int) -> list[GeneratedImage]:
        data = list(getattr(response, "data", None) or [])[:n]
        if not data:
            raise PermanentGenerationError(
                gettext_noop("The image service answered without an image."),
                detail="empty 'data'",
            )
        cost = _cost(response)
        share = None if cost is None else cost / len(data)  # the call's cost, shared out
        return [self._image(response, item, share) for item in data]

    def _result(self, response: Any) -> GeneratedImage:
        """The first (the only, for ``n=1``) picture of an answer."""
        return self._results(response, 1)[0]

    def _image(self, response: Any, data: Any, cost: Decimal | None) -> GeneratedImage:
        content_type: str | None = None
        if getattr(data, "b64_json", None):
            try:
                content = base64.b64decode(data.b64_json, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise InvalidImageError(detail=f"b64_json does not decode: {exc}") from exc
        elif getattr(data, "url", None):
            downloaded = download_image(data.url)
            content, content_type = downloaded.content, downloaded.content_type
        else:
            raise PermanentGenerationError(
                gettext_noop("The image service answered without an image."),
                detail="neither b64_json nor url",
            )
        hidden = getattr(response, "_hidden_params", None) or {}
        return GeneratedImage(
            content=content,
            content_type=content_type,
            model=self.model,
            cost=cost,
            revised_prompt=getattr(data, "revised_prompt", None),
            metadata={"litellm_call_id": hidden.get("litellm_call_id")},
        )
