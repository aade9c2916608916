"""Queueing: what a click (or a backfill) does once it holds a claim.

The web process claims the record (:mod:`page_images.claims`), announces it, and sends the job to
the broker after the transaction commits, so a worker never reads a claim that was rolled back. A
broker that fails never leaves a record claimed with no job behind it: the claim is released with
a message the editor sees, and the click answers with it.

The job goes to whichever framework ``TASK_RUNNER`` names: Celery (:mod:`page_images.tasks`) or
Django's tasks framework (:mod:`page_images.tasks_framework`), each imported on the first enqueue
only, so that a site without the other's extra never imports it.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

from django.db import connections, transaction
from django.utils.translation import gettext_noop

from page_images import claims, pictures, pricing, quotas, signals
from page_images.conf import app_settings
from page_images.exceptions import EmptyPromptError, EnqueueError
from page_images.history import Generation, content_type_of
from page_images.jobs import ImageJob
from page_images.runners import DJANGO_TASKS
from page_images.specs import GenerationSpec, build_spec

if TYPE_CHECKING:
    import uuid
    from collections.abc import Iterable
    from contextlib import AbstractContextManager

    from page_images.models import ImageGeneratingMixin

logger = logging.getLogger(__name__)

ENQUEUE_FAILED_MESSAGE = gettext_noop(
    "The image job could not be queued (the task queue is unreachable). Try again."
)

#: How hard the web process tries to reach the broker before giving up: bounded, so that a click
#: never waits long on a broker that is down (Celery's default publish policy, made explicit).
PUBLISH_RETRY_POLICY = {
    "max_retries": 3,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}

_Held = list[tuple["ImageGeneratingMixin", "uuid.UUID"]]


def broker_producer() -> AbstractContextManager[Any]:
    """One broker connection to send many jobs over (Celery's producer pool); nothing to share
    on Django's tasks framework, whose backend keeps its own connections."""
    if app_settings.TASK_RUNNER == DJANGO_TASKS:
        return nullcontext()
    from page_images.tasks import generate_image

    return generate_image.app.producer_or_acquire()


def enqueue_generation(
    instance: ImageGeneratingMixin, token: uuid.UUID, *, producer: Any = None
) -> None:
    """Send the job to the broker with the time limits the settings ask for now."""
    job = ImageJob(label=instance._meta.label, pk=str(instance.pk), token=token)
    if app_settings.TASK_RUNNER == DJANGO_TASKS:
        from page_images import tasks_framework

        tasks_framework.enqueue(job)
        return
    from page_images.tasks import generate_image

    options: dict[str, Any] = {
        "soft_time_limit": app_settings.TASK_SOFT_TIME_LIMIT,
        "time_limit": app_settings.TASK_TIME_LIMIT,
        "retry": True,
        "retry_policy": PUBLISH_RETRY_POLICY,
        "producer": producer,
        # What logs and monitors show for the job, given rather than computed by Celery's saferepr
        # of the payload on every click (a tenth of the enqueue's CPU).
        "argsrepr": f"({instance.image_reference!r},)",
        "kwargsrepr": "{}",
    }
    if app_settings.QUEUE:
        options["queue"] = app_settings.QUEUE
    generate_image.apply_async(
        args=(job.model_dump(mode="json", exclude_defaults=True),), **options
    )


def _enqueue(held: _Held) -> BaseException | None:
    """Send the claims' jobs, in order, over one broker connection; return the failure, if any.

    A broker that fails leaves nothing claimed behind: the job that failed and every one after it
    (the broker is down, and each would wait out the publish retries again) are released with a
    message on the record, which the editor sees and can retry.
    """
    sent = 0
    try:
        with broker_producer() as producer:
            for instance, token in held:
                enqueue_generation(instance, token, producer=producer)
                sent += 1
    except Exception as exc:
        logger.exception(
            "Could not queue the image job for %s (%d of %d queued)",
            held[sent][0].image_reference,
            sent,
            len(held),
        )
        for instance, token in held[sent:]:
            instance.image_generating = False
            instance.image_error = ENQUEUE_FAILED_MESSAGE
            claims.fail_generation(
                type(instance), instance.pk, token, ENQUEUE_FAILED_MESSAGE, exc, instance=instance
            )
        return exc
    return None


def _start(held: _Held, user: Any, using: str) -> None:
    """Announce the claims, then queue their jobs when the transaction commits.

    Inside a transaction the jobs go out at its commit, so a worker never reads a claim that was
    rolled back; a broker failure then cannot reach the caller and is recorded on the records.
    Outside one, it is raised as :class:`EnqueueError` once the records show it.
    """
    for instance, token in held:
        signals.send(
            signals.generation_started, type(instance), instance=instance, user=user, token=token
        )
        claims.notify(instance)
    failures: list[BaseException | None] = []
    transaction.on_commit(lambda: failures.append(_enqueue(held)), using=using)
    if failures and failures[0] is not None and not connections[using].in_atomic_block:
        raise EnqueueError(ENQUEUE_FAILED_MESSAGE) from failures[0]


def _generation(
    instance: ImageGeneratingMixin, token: uuid.UUID, spec: GenerationSpec, user: Any
) -> Generation:
    """The history row of a click, unsaved: what it asks for, and who asked."""
    return Generation(
        content_type=content_type_of(instance),
        object_id=str(instance.pk),
        token=token,
        user=user if getattr(user, "is_authenticated", False) else None,
        prompt=spec.prompt,
        subject=spec.subject,
        prompt_edited=spec.prompt_edited,
        preset=spec.preset,
        aspect_ratio=spec.aspect_ratio,
        size=spec.size,
        quality=spec.quality or "",
        variants=spec.variants,
        review=spec.review,
        backend=app_settings.BACKEND,
        model=str(app_settings.OPTIONS.get("model") or ""),
        estimated_cost=pricing.estimate(spec),
    )


def _claim_with_history(
    instance: ImageGeneratingMixin,
    spec: GenerationSpec,
    user: Any,
    replace: bool,
    enforce_quota: bool = False,
) -> uuid.UUID | None:
    """Claim the record and write its history row in one transaction: never one without the
    other. A review waiting is replaced by the new pictures. (Older generations still open,
    whose claim this one took over, are closed by the job when it starts: not the click's cost.)
    With ``enforce_quota``, the user's quotas are checked first, under their lock, in the same
    transaction, so that the next click under them counts this one's row (:mod:`quotas`).
    """
    using = instance._state.db or "default"
    in_review = instance.image_review
    with transaction.atomic(using=using):
        if enforce_quota:
            quotas.enforce(user, spec.variants, pricing.estimate(spec), lock=True, using=using)
        token = claims.claim(instance, replace=replace)
        if token is None:
            return None
        if in_review:
            pictures.drop_review(instance)
        _generation(instance, token, spec, user).save(using=using)
    return token


def request_generation(
    instance: ImageGeneratingMixin,
    *,
    user: Any = None,
    replace: bool = True,
    prompt: str | None = None,
    preset: str | None = None,
    aspect_ratio: str | None = None,
    enforce_quota: bool = False,
) -> uuid.UUID | None:
    """Start generating a picture for ``instance``: claim it, then queue the job after commit.

    ``prompt``, ``preset`` and ``aspect_ratio`` are the editor's choices from the prompt panel
    (:mod:`page_images.specs`); without them the record's own prompt and the site's settings
    decide. Returns the claim token, or None when a generation is already running (no second
    job), or when ``replace=False`` and the record already has a picture (the chip's case: it
    offers a picture only to records without one).
    Raises :class:`EmptyPromptError` before claiming if there is no text to draw,
    :class:`InvalidChoiceError` for a choice the site does not offer,
    :class:`QuotaExceededError` (with ``enforce_quota``, as the trigger view asks) when one of
    ``user``'s quotas has no room left, and
    :class:`EnqueueError` if the broker refused the job (the claim is released first, with a
    message on the record). Inside a transaction, the job is queued when it commits; an enqueue
    failure then cannot reach the caller, so it is recorded on the record instead.
    """
    spec = build_spec(instance, prompt=prompt, preset=preset, aspect_ratio=aspect_ratio)
    token = _claim_with_history(instance, spec, user, replace, enforce_quota)
    if token is None:
        return None
    _start([(instance, token)], user, instance._state.db or "default")
    return token


def request_generations(
    records: Iterable[ImageGeneratingMixin],
    *,
    user: Any = None,
    replace: bool = False,
    batch_size: int = 500,
    preset: str | None = None,
) -> list[ImageGeneratingMixin]:
    """Start generating pictures for many records at once (a backfill); return those claimed.

    Each record gets what :func:`request_generation` promises: one job at most, none while one
    runs, none (unless ``replace``) for a record that has a picture, none for a record with no
    text (skipped, not raised). What differs is the cost: ``batch_size`` records are claimed
    with one UPDATE and all the jobs are sent over one broker connection, so queueing a backfill
    costs a fraction of a millisecond per record instead of a commit and a connection each, and
    the first pictures are not held up behind the queueing of the last.
    Raises :class:`InvalidChoiceError` for a ``preset`` the site does not offer (before anything
    is claimed), and :class:`EnqueueError` (outside a transaction) if the broker failed part-way;
    the records not queued are released with a message, and those queued before the failure go on.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    groups: dict[tuple[type[ImageGeneratingMixin], str], list[ImageGeneratingMixin]] = {}
    specs: dict[int, GenerationSpec] = {}
    for record in records:
        try:
            spec = build_spec(record, preset=preset)
        except EmptyPromptError:
            continue
        specs[id(record)] = spec
        groups.setdefault((type(record), record._state.db or "default"), []).append(record)
    started: list[ImageGeneratingMixin] = []
    for (model, using), group in groups.items():
        held: _Held = []
        for start in range(0, len(group), batch_size):
            with transaction.atomic(using=using):
                won = claims.claim_batch(model, using, group[start : start + batch_size], replace)
                Generation.objects.using(using).bulk_create(
                    _generation(instance, token, specs[id(instance)], user)
                    for instance, token in won
                )
            held += won
        if held:
            _start(held, user, using)
            started += [instance for instance, _token in held]
    return started
