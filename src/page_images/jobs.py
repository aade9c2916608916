"""The job that turns a claimed record into a stored picture, whichever framework runs it.

The job is built so that every way it can end leaves the record in a state an editor can see and
retry: success stores the picture and releases the claim; a transient provider error is retried
with back-off while the claim is kept (and renewed); everything else releases the claim with a
readable message. Only a killed worker skips all of that, and its claim then goes stale after
``CLAIM_TIMEOUT`` and may be retaken (see :func:`page_images.claims.release_stale_claims`).

Those guarantees live here once. A task framework only binds :func:`run` to its own task and
says, through an :class:`Attempt`, how many retries came before, how the next one is scheduled
and which exception its soft time limit raises: Celery in :mod:`page_images.tasks`, Django's
tasks framework in :mod:`page_images.tasks_framework`. Neither framework is imported here.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from django.apps import apps
from django.core.files.base import ContentFile
from django.db import connections, router, transaction
from django.utils.translation import gettext_noop
from PIL import Image
from pydantic import BaseModel, ConfigDict

from page_images import alttext, claims, history, pacing, pictures, previews, pricing, signals
from page_images.backends import get_backend
from page_images.backends.base import GeneratedImage, ImageRequest
from page_images.conf import app_settings, parse_size
from page_images.exceptions import (
    EmptyPromptError,
    GenerationError,
    PromptChangedError,
    StaleClaimError,
    TransientGenerationError,
)
from page_images.intake import recheck_image, validate_image
from page_images.models import ImageGeneratingMixin
from page_images.provenance import mark_ai_generated
from page_images.specs import record_prompt, with_preset

if TYPE_CHECKING:
    from page_images.backends.base import BaseBackend, PreviewImage
    from page_images.history import Generation

# The job's log keeps the name it had when Celery was its only runner: sites filter on it.
logger = logging.getLogger("page_images.tasks")

#: The task's stable name, and the ``<workflow>`` of the seed's ``job:<channel>:<workflow>``.
WORKFLOW = "page_images.generate"

TIME_LIMIT_MESSAGE = gettext_noop("The image took too long to make. Try again.")
UNEXPECTED_MESSAGE = gettext_noop("Something went wrong while making the image. Try again.")
PACING_FULL_MESSAGE = gettext_noop(
    "The image service's rate limit is booked up for longer than this site waits. Try again later."
)

#: A wait for the provider's budget shorter than this is slept in the worker; a longer one
#: hands the job back to the queue, so a worker thread never idles for minutes.
SLEEP_UNDER = 1.5
#: A handed-back job comes back this much before its booked moment and sleeps the rest: a
#: broker's countdown may be late by a few hundred milliseconds (more on a busy worker), a sleep
#: is not.
EARLY = 1.0
#: Hand-backs allowed per job before it gives up (each is one booking that came too late).
MAX_PACED = 20


class Paced(Exception):
    """The job's call is booked ``wait`` seconds from now, at ``slot``: hand the job back."""

    def __init__(self, wait: float, slot: float) -> None:
        super().__init__(f"paced: the provider call is booked in {wait:.1f} s")
        self.wait = wait
        self.slot = slot


class ImageJob(BaseModel):
    """The task's payload: which record, and the claim the job must hold to write to it."""

    model_config = ConfigDict(frozen=True)

    #: The model's label, ``"app_label.ModelName"``.
    label: str
    #: The primary key, as text (any pk type survives JSON that way).
    pk: str
    token: uuid.UUID
    #: The moment booked for the provider call by an earlier attempt (:mod:`page_images.pacing`),
    #: on Redis's clock; None: not booked yet.
    slot: float | None = None
    #: How many times pacing handed the job back to the queue: those attempts are not retries.
    paced: int = 0


class Attempt(Protocol):
    """What the framework running one attempt of the job tells it, and does for it."""

    #: How many attempts of this job ran before this one.
    retries: int
    #: The exception the framework raises inside the job at its soft time limit.
    time_limit: type[BaseException]

    def retry(
        self, error: TransientGenerationError, countdown: float, job: ImageJob | None = None
    ) -> None:
        """Schedule the next attempt in ``countdown`` seconds, with ``job`` as its payload when
        given (else the same); raise if it cannot be queued."""


def tracking_string(channel: str) -> str:
    """The seed's ``job:<channel>:<workflow>``, returned by the task for logs and monitoring."""
    return f"job:{channel}:{WORKFLOW}"


def prepare_backend() -> None:
    """Let the backend do its slow set-up (LiteLLM's import) outside any job's time limit, and
    load Pillow's decoders, which the first picture's check would otherwise import."""
    try:
        Image.preinit()
        get_backend().prepare()
    except Exception:
        # A broken backend must not stop the worker: the jobs will fail with a readable message.
        logger.exception("The image backend could not prepare itself")


def retry_countdown(retries: int) -> float:
    """Exponential back-off with jitter, so that a burst of 429s does not come back in step."""
    ceiling = min(app_settings.RETRY_BACKOFF * 2**retries, app_settings.RETRY_BACKOFF_MAX)
    return random.uniform(ceiling / 2, ceiling)


def _close_db_connections() -> None:
    # A provider call takes 10 s to minutes; holding a database connection through it would let a
    # pool of waiting jobs exhaust the server's connections. Django reconnects on next use.
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()


def _time_limit_in(exc: BaseException, time_limit: type[BaseException]) -> bool:
    # HTTP clients may wrap the exception raised at the soft limit in their own error.
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, time_limit):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _make_picture(
    instance: ImageGeneratingMixin,
    job: ImageJob,
    generation: Generation | None,
    time_limit: type[BaseException],
) -> None:
    keeper = previews.PreviewKeeper(
        instance, job.token, announce=claims.notify, time_limit=time_limit
    )
    try:
        if app_settings.PREVIEWS:
            previews.sweep(instance)  # what a killed worker's job left behind
        _generate_and_store(instance, job, generation, keeper)
    except time_limit:
        raise
    except Exception as exc:
        if _time_limit_in(exc, time_limit):
            raise time_limit() from exc
        raise
    finally:
        keeper.close()


def _prompt(instance: ImageGeneratingMixin, generation: Generation | None) -> str:
    """What to draw in this attempt: the editor's prompt exactly as sent, or the record's as it
    is now (a retry after the text changed draws the new text) with the preset's words."""
    if generation is not None and generation.prompt_edited:
        return generation.prompt
    own = record_prompt(instance)
    if not own:
        return ""
    preset = app_settings.PRESETS.get(generation.preset, {}) if generation is not None else {}
    return with_preset(own, preset)


def _request(
    instance: ImageGeneratingMixin, prompt: str, generation: Generation | None
) -> ImageRequest:
    if generation is None:  # a job queued by claim() and enqueue_generation() directly
        width, height = parse_size(app_settings.SIZE)
        return ImageRequest(
            prompt=prompt,
            width=width,
            height=height,
            quality=app_settings.QUALITY,
            reference=instance.image_reference,
        )
    width, height = parse_size(generation.size or app_settings.SIZE)
    return ImageRequest(
        prompt=prompt,
        width=width,
        height=height,
        quality=generation.quality or None,
        reference=instance.image_reference,
        n=max(1, generation.variants),
    )


def _total_cost(results: list[GeneratedImage]) -> Decimal | None:
    costs = [result.cost for result in results]
    if any(cost is None for cost in costs):
        return None
    return sum((cost for cost in costs if cost is not None), Decimal(0))


def _wait_for_turn(model: str, pictures: int, job: ImageJob) -> None:
    """Wait for the call's booked moment in the provider's budget (:mod:`page_images.pacing`):
    sleep a short wait, raise :class:`Paced` for a longer one, fail when none is in reach."""
    booking = pacing.book(model, pictures, job.slot)
    if booking is None:
        return
    if not booking.booked or (booking.wait >= SLEEP_UNDER and job.paced >= MAX_PACED):
        raise GenerationError(
            PACING_FULL_MESSAGE,
            detail=f"{model}: next free moment in {booking.wait:.0f} s, {job.paced} hand-backs",
        )
    if booking.wait >= SLEEP_UNDER:
        raise Paced(booking.wait, booking.at)
    if booking.wait > 0:
        time.sleep(booking.wait)


def _draw(
    backend: BaseBackend, request: ImageRequest, keeper: previews.PreviewKeeper
) -> list[GeneratedImage]:
    """The provider's pictures; with PREVIEWS, and one picture asked for, its previews on the
    way to ``keeper`` (candidates to choose from are drawn without: which would it show?)."""
    if request.n != 1 or not app_settings.PREVIEWS:
        return backend.generate_variants(request)

    def on_preview(preview: PreviewImage) -> None:
        keeper(preview)
        _close_db_connections()  # the provider is not done: hold no connection meanwhile

    return [backend.generate_with_previews(request, on_preview, partials=app_settings.PREVIEWS)]


def _generate_and_store(
    instance: ImageGeneratingMixin,
    job: ImageJob,
    generation: Generation | None,
    keeper: previews.PreviewKeeper,
) -> None:
    token = job.token
    prompt = _prompt(instance, generation)
    if not prompt:
        raise EmptyPromptError()
    own = record_prompt(instance)
    request = _request(instance, prompt, generation)
    backend = get_backend()
    _close_db_connections()
    _wait_for_turn(getattr(backend, "model", ""), request.n, job)
    results = _draw(backend, request, keeper)
    images = [
        mark_ai_generated(
            validate_image(result.content, declared_type=result.content_type),
            model=result.model,
            validate=recheck_image,
        )
        for result in results
    ]
    # An editor may have rewritten the text while the provider worked (10 s to minutes): a
    # picture of the old text would be stored as if it showed the new one. A prompt the editor
    # wrote in the panel is what the picture shows, whatever the record's text.
    edited = generation is not None and generation.prompt_edited
    if not edited and record_prompt(type(instance)._base_manager.get(pk=instance.pk)) != own:
        raise PromptChangedError(detail=f"{instance.image_reference}: the prompt changed")
    many = len(images) > 1
    stem = f"{instance.pk}-{token.hex[:12]}"
    files = [
        ContentFile(
            image.content,
            name=f"{stem}-{index + 1}.{image.extension}" if many else f"{stem}.{image.extension}",
        )
        for index, image in enumerate(images)
    ]
    model_name = results[0].model or type(backend).__name__
    outcome = {"prompt": prompt, "model": model_name, "provider_cost": _total_cost(results)}
    outcome["cost"] = pricing.price(model_name, request.size, request.quality, len(images))
    previous_alt = ""  # the alt text generated for the picture a live picture replaces
    if generation is not None and generation.review:
        stored = pictures.store_candidates(
            instance, files, token=token, generation=generation, outcome=outcome
        )
        signals.send(
            signals.generation_succeeded,
            type(instance),
            instance=instance,
            image=results[0],
            token=token,
        )
        claims.notify(instance)
    else:
        replaced = pictures.current_name(instance)
        if alttext.wanted(type(instance)):
            previous_alt = alttext.generated_for(instance, replaced)
        claims.set_image_and_notify(instance, files[0], token=token, image=results[0])
        # The picture is live (and announced); its history in one commit (see _start).
        with transaction.atomic(using=instance._state.db):
            history.record_outcome(
                type(instance), instance.pk, token, history.Generation.Status.DONE, **outcome
            )
            stored = [
                pictures.kept_live(instance, pictures.current_name(instance), replaced, generation)
            ]
    logger.info(
        "Image made for %s by %s (%d pictures, %d bytes, cost %s)",
        instance.image_reference,
        model_name,
        len(images),
        sum(len(image.content) for image in images),
        outcome["provider_cost"],
    )
    # Only now, the picture stored and announced: the editor sees it first, and a description
    # that fails or takes too long (ALT_TEXT["TIMEOUT"]) leaves the alt text empty, nothing else.
    if alttext.wanted(type(instance)):
        _close_db_connections()  # a description takes seconds: hold no connection meanwhile
        alttext.write(instance, stored, images[: len(stored)], previous=previous_alt)


def _start(
    model: type[ImageGeneratingMixin], pk: Any, token: uuid.UUID
) -> tuple[bool, Generation | None]:
    """Renew the claim and open the attempt's history row, in one commit; False when the claim
    is not this job's any more.

    Every commit waits for the disk (fdatasync: about 3 ms on the benchmark's machine, a tenth
    of a job's own part), so the job's bookkeeping goes in as few commits as it can.
    """
    with transaction.atomic(using=router.db_for_write(model)):
        if not claims.touch_claim(model, pk, token):
            return False, None
        return True, history.record_start(model, pk, token)


def _requeue(
    model: type[ImageGeneratingMixin],
    pk: Any,
    token: uuid.UUID,
    instance: ImageGeneratingMixin | None,
) -> None:
    """Mark the claim as waiting in the queue again (a retry, or a hand-back for pacing), and
    say so: the container that said "started" says "queued" again until the next attempt."""
    if claims.requeue_claim(model, pk, token, instance) and instance is not None:
        claims.notify(instance)


def run(job: ImageJob, attempt: Attempt) -> str:
    """Make and store the picture for ``job``; return ``job:<channel>:page_images.generate``."""
    model = apps.get_model(job.label)
    if not issubclass(model, ImageGeneratingMixin):
        logger.error("Refused an image job for %s, which does not use the mixin", job.label)
        return tracking_string(job.label.lower())
    pk = model._meta.pk.to_python(job.pk)
    channel = model._meta.label_lower
    retrying = False
    settled = False  # the claim is known to be released: the safety net below has nothing to do
    instance: ImageGeneratingMixin | None = None

    def fail(message: str, error: BaseException | None) -> None:
        nonlocal settled
        claims.fail_generation(model, pk, job.token, message, error, instance=instance)
        settled = True

    try:
        # Inside the try: a history that cannot be written fails the job with a message, it
        # never leaves the record claimed.
        held, generation = _start(model, pk, job.token)
        if not held:
            settled = True  # nothing of this job's to release
            logger.info("Image job for %s:%s no longer holds its claim; skipped", channel, pk)
            claims.announce_if_deleted(model, pk)
            return tracking_string(channel)
        instance = model._base_manager.get(pk=pk)
        channel = instance.get_image_channel()
        # Its container said "queued" since the click: now "started", timed from here.
        claims.notify(instance)
        _make_picture(instance, job, generation, attempt.time_limit)
        settled = True
    except model.DoesNotExist:
        logger.info("Image job for %s:%s: the record was deleted", channel, pk)
        claims.announce_if_deleted(model, pk)
    except StaleClaimError:
        logger.info(
            "Image job for %s:%s lost its claim while running; picture discarded", channel, pk
        )
        claims.announce_if_deleted(model, pk)
    except Paced as paced:
        retrying = True
        countdown = max(0.0, paced.wait - EARLY)
        logger.info("Image job for %s:%s waits %.1fs for its turn", channel, pk, paced.wait)
        _requeue(model, pk, job.token, instance)
        later = job.model_copy(update={"slot": paced.slot, "paced": job.paced + 1})
        try:
            attempt.retry(TransientGenerationError(detail=str(paced)), countdown, later)
        except Exception as retry_error:  # the job could not be queued again
            retrying = False
            logger.exception("Image job for %s:%s could not wait for its turn", channel, pk)
            fail(TransientGenerationError.default_message, retry_error)
    except TransientGenerationError as exc:
        retries = attempt.retries - job.paced  # hand-backs for pacing are not retries
        if exc.retry_after:
            pacing.pause(getattr(get_backend(), "model", ""), exc.retry_after)
        if retries < app_settings.MAX_RETRIES:
            retrying = True
            countdown = max(retry_countdown(retries), exc.retry_after or 0.0)
            logger.warning(
                "Image job for %s:%s will retry in %.1fs: %s", channel, pk, countdown, exc
            )
            _requeue(model, pk, job.token, instance)
            try:
                attempt.retry(exc, countdown)
            except Exception as retry_error:  # the retry could not be queued
                retrying = False
                logger.exception("Image job for %s:%s could not schedule its retry", channel, pk)
                fail(exc.user_message, retry_error)
        else:
            logger.warning("Image job for %s:%s gave up after retries: %s", channel, pk, exc)
            fail(exc.user_message, exc)
    except GenerationError as exc:
        logger.warning("Image job for %s:%s failed: %s", channel, pk, exc)
        fail(exc.user_message, exc)
    except EmptyPromptError as exc:
        fail(str(exc), exc)
    except attempt.time_limit as exc:
        logger.warning("Image job for %s:%s hit its soft time limit", channel, pk)
        fail(TIME_LIMIT_MESSAGE, exc)
    except Exception as exc:
        logger.exception("Image job for %s:%s failed unexpectedly", channel, pk)
        fail(UNEXPECTED_MESSAGE, exc)
        raise
    finally:
        # The safety net: whatever path was taken, a job that is not being retried never leaves
        # its claim behind. Skipped once the claim is known to be released (a stored picture or
        # a recorded failure): one UPDATE less per job.
        if not retrying and not settled:
            fail(UNEXPECTED_MESSAGE, None)
    return tracking_string(channel)
