"""Generate pictures for every record of a model that has none: a backfill.

``manage.py page_images_backfill stories.Page`` claims and queues the records in batches through
:func:`~page_images.queueing.request_generations` (the claims a click takes, so a record an
editor is generating, or one that has a picture, is never paid for twice), keeps at most
``--max-in-flight`` of its jobs queued or running, so the editors' own clicks never wait behind
thousands of jobs, and waits for the last of them to end to print what they did and cost.

Nothing is remembered between runs, and nothing needs to be: a record with a picture, or with a
job running, is not claimable. Interrupted (Ctrl-C), the command stops queueing and leaves the
jobs already queued to the workers; run again, it takes up the records that still have no
picture, and retries the ones whose job failed.

Exit status: 0 when every job of the run ended with a picture (or candidates waiting for review);
1 when any failed, was cancelled or was presumed dead, so that a scheduled run is noticed; 130
when interrupted. Skipped records (a picture already, a job running, no text) are not failures.

What it says to the operator is translated (the active language: ``LANGUAGE_CODE``, as for
``manage.py check``); amounts of money keep the point and the dollar sign of the price table.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from django.core.exceptions import FieldError, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count, Q, Sum
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from page_images import pricing
from page_images.claims import claimable, lost
from page_images.conf import app_settings
from page_images.exceptions import EmptyPromptError, InvalidChoiceError
from page_images.history import OPEN, Generation
from page_images.models import ImageGeneratingMixin, image_generating_models
from page_images.queueing import request_generations
from page_images.specs import build_spec

if TYPE_CHECKING:
    import uuid
    from collections.abc import Iterator

    from django.db.models import QuerySet

#: Generation statuses that count as a picture made: stored, or waiting for an editor's choice.
SUCCEEDED = (Generation.Status.DONE, Generation.Status.REVIEW)


def estimate_cost(model: str, size: str, quality: str | None, variants: int) -> Decimal | None:
    """What one generation is expected to cost in USD, by the site's price table
    (:func:`page_images.pricing.price`); None when the table does not price it."""
    return pricing.price(model, size, quality, variants, backend=app_settings.BACKEND)


@contextmanager
def _deferred_interrupt() -> Iterator[None]:
    """Hold Ctrl-C back while a batch is claimed and queued, then raise it.

    Interrupted between the claim's commit and the job's send, records would stay claimed with
    no job behind them (until ``QUEUE_TIMEOUT`` presumes it dead), and a second run would skip
    them. Only the main thread can receive signals; elsewhere there is nothing to hold back.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def _lookup(text: str) -> tuple[str, Any]:
    """``"story__title__icontains=fox"`` → a ``filter()`` keyword; ``__in`` takes a comma list
    and ``__isnull`` true or false."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise CommandError(
            _("--filter %(lookup)s: write it as field=value (Django lookups)")
            % {"lookup": repr(text)}
        )
    key = key.strip()
    if key.endswith("__in"):
        return key, [part.strip() for part in value.split(",") if part.strip()]
    if key.endswith("__isnull"):
        if value.strip().lower() not in ("true", "false", "1", "0"):
            raise CommandError(
                _("--filter %(lookup)s: __isnull takes true or false") % {"lookup": repr(text)}
            )
        return key, value.strip().lower() in ("true", "1")
    return key, value


class Command(BaseCommand):
    help = (
        "Generate pictures for the records of a model that have none, a batch at a time, with "
        "at most --max-in-flight jobs queued or running; stop with Ctrl-C and run it again to "
        "go on."
    )

    #: Seconds between two looks at the jobs in flight (a test makes it short).
    poll_interval = 2.0

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model", help="The model, as app_label.ModelName (stories.Page).")
        parser.add_argument(
            "--filter",
            action="append",
            default=[],
            metavar="LOOKUP=VALUE",
            help="Only the records matching this Django lookup (repeatable), such as "
            "story__title__icontains=fox or id__in=1,2,3.",
        )
        parser.add_argument(
            "--limit", type=int, help="Queue at most this many jobs, then wait for them."
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Count what would be queued and estimate its cost; queue nothing.",
        )
        parser.add_argument("--preset", help="The style preset of PAGE_IMAGES['PRESETS'].")
        parser.add_argument(
            "--max-in-flight",
            type=int,
            default=20,
            help="At most this many of the run's jobs queued or running at once (default 20).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        model = self._model(options["model"])
        limit: int | None = options["limit"]
        if limit is not None and limit < 1:
            raise CommandError(_("--limit must be at least 1"))
        if options["max_in_flight"] < 1:
            raise CommandError(_("--max-in-flight must be at least 1"))
        try:
            matching = model._default_manager.filter(
                **dict(_lookup(text) for text in options["filter"])
            ).order_by("pk")
            total = matching.count()
        except (FieldError, ValidationError, ValueError, TypeError) as exc:
            raise CommandError(_("--filter: %(problem)s") % {"problem": exc}) from exc
        todo = matching.filter(claimable(model, replace=False))
        if options["dry_run"]:
            self._dry_run(model, todo, total, limit, options["preset"])
            return
        run = _Run(self, model, todo, total, limit, options["max_in_flight"], options["preset"])
        try:
            run.go()
        except KeyboardInterrupt:
            self.stdout.write(run.summary())
            waiting = run.in_flight()
            raise CommandError(
                ngettext(
                    "Interrupted: %(count)d queued job will still run. "
                    "Run the command again to go on.",
                    "Interrupted: %(count)d queued jobs will still run. "
                    "Run the command again to go on.",
                    waiting,
                )
                % {"count": waiting},
                returncode=130,
            ) from None
        self.stdout.write(run.summary())
        failed = run.counts()["failed"]
        if failed:
            raise CommandError(
                ngettext(
                    "%(count)d generation failed: see the summary.",
                    "%(count)d generations failed: see the summary.",
                    failed,
                )
                % {"count": failed},
                returncode=1,
            )

    def _model(self, label: str) -> type[ImageGeneratingMixin]:
        """The model named ``app_label.ModelName`` (in any case), if it uses the mixin."""
        models = {model._meta.label_lower: model for model in image_generating_models()}
        model = models.get(label.lower())
        if model is None:
            raise CommandError(
                _("%(label)s is not a model that uses ImageGeneratingMixin; these do: %(models)s")
                % {
                    "label": repr(label),
                    "models": ", ".join(model._meta.label for model in models.values()),
                }
            )
        return model

    def _dry_run(
        self,
        model: type[ImageGeneratingMixin],
        todo: QuerySet[Any],
        total: int,
        limit: int | None,
        preset: str | None,
    ) -> None:
        """Count the records a run would queue (those with text to draw) and price them."""
        wanted = 0
        no_text = 0
        unit: Decimal | None = None
        for record in todo.iterator():
            if limit is not None and wanted >= limit:
                break
            try:
                spec = build_spec(record, preset=preset)
            except EmptyPromptError:
                no_text += 1
                continue
            except InvalidChoiceError as exc:
                raise CommandError(str(exc)) from exc
            wanted += 1
            if unit is None:
                model_name = str(app_settings.OPTIONS.get("model") or "")
                unit = estimate_cost(model_name, spec.size, spec.quality, spec.variants)
        eligible = todo.count()
        self.stdout.write(
            _(
                "Dry run: would queue %(wanted)d of %(total)d %(records)s (%(taken)d have a "
                "picture or a job running, %(no_text)d have no text)."
            )
            % {
                "wanted": wanted,
                "total": total,
                "records": model._meta.verbose_name_plural,
                "taken": total - eligible,
                "no_text": no_text,
            }
        )
        if not wanted:
            return
        if unit is None:
            self.stdout.write(_("Estimated cost: cost unknown (no price for this model and size)."))
        else:
            self.stdout.write(
                _("Estimated cost: $%(cost)s (%(count)d at $%(unit)s).")
                % {"cost": f"{unit * wanted:.2f}", "count": wanted, "unit": f"{unit:.4f}"}
            )


class _Run:
    """One run of the backfill: what it queued, and how to tell what became of it."""

    def __init__(
        self,
        command: Command,
        model: type[ImageGeneratingMixin],
        todo: QuerySet[Any],
        total: int,
        limit: int | None,
        max_in_flight: int,
        preset: str | None,
    ) -> None:
        self.command = command
        self.model = model
        self.todo = todo
        self.limit = limit
        self.max_in_flight = max_in_flight
        self.preset = preset
        self.queued = 0
        #: Matched, but had a picture or a job running when the run began.
        eligible = todo.count()
        self.skipped_taken = total - eligible
        #: What the progress line counts towards: the records to take up, within the limit.
        self.planned = eligible if limit is None else min(eligible, limit)
        #: Taken up, but not queued: no text to draw, or claimed by someone meanwhile.
        self.skipped_later = 0
        self.tokens: set[uuid.UUID] = set()
        self.err = command.stderr
        self.tty = self.err.isatty()

    def go(self) -> None:
        last_pk: Any = None
        exhausted = False
        while True:
            in_flight = self.in_flight()
            room = self.max_in_flight - in_flight
            if self.limit is not None:
                room = min(room, self.limit - self.queued)
                exhausted = exhausted or self.queued >= self.limit
            if not exhausted and room > 0:
                batch_rows = self.todo if last_pk is None else self.todo.filter(pk__gt=last_pk)
                batch = list(batch_rows[:room])
                if batch:
                    last_pk = batch[-1].pk
                    self._queue(batch)
                    continue
                exhausted = True
            if exhausted and in_flight == 0:
                break
            self._progress(in_flight)
            time.sleep(self.command.poll_interval)
        if self.tty:
            self.err.write("")

    def _queue(self, batch: list[Any]) -> None:
        try:
            with _deferred_interrupt():
                started = request_generations(batch, preset=self.preset)
        except InvalidChoiceError as exc:
            raise CommandError(str(exc)) from exc
        self.queued += len(started)
        self.skipped_later += len(batch) - len(started)
        self.tokens.update(cast("uuid.UUID", record.image_claim_token) for record in started)

    def in_flight(self) -> int:
        """The run's jobs still queued or running: their records hold the run's claims, and
        their deadline has not passed (a job presumed dead is over)."""
        if not self.tokens:
            return 0
        return int(
            self.model._base_manager.filter(image_claim_token__in=self.tokens)
            .filter(image_generating=True)
            .exclude(lost())
            .count()
        )

    def counts(self) -> dict[str, Any]:
        """What the run's history rows say: done, failed, still running, and the cost."""
        rows = Generation.objects.filter(token__in=self.tokens)
        totals = rows.aggregate(
            done=Count("pk", filter=Q(status__in=SUCCEEDED)),
            open=Count("pk", filter=Q(status__in=OPEN)),
            total_cost=Sum("cost"),
            priced=Count("cost"),
            rows=Count("pk"),
        )
        # A job that ended without writing its outcome (presumed dead) has failed.
        in_flight = self.in_flight()
        totals["failed"] = totals["rows"] - totals["done"] - min(totals["open"], in_flight)
        totals["running"] = min(totals["open"], in_flight)
        return totals

    def _progress(self, in_flight: int) -> None:
        counts = self.counts()
        line = _(
            "queued %(queued)d/%(planned)d, in flight %(in_flight)d, done %(done)d, "
            "failed %(failed)d"
        ) % {
            "queued": self.queued,
            "planned": self.planned,
            "in_flight": in_flight,
            "done": counts["done"],
            "failed": counts["failed"],
        }
        if self.tty:  # one line, written over at each step
            self.err.write("\r" + line.ljust(79), ending="")
        else:  # a log: one line per step
            self.err.write(line)
        self.err.flush()

    def summary(self) -> str:
        counts = self.counts()
        skipped = self.skipped_taken + self.skipped_later
        if counts["running"]:
            queued = _(
                "Queued %(queued)d: done %(done)d, failed %(failed)d, still running %(running)d."
            )
        else:
            queued = _("Queued %(queued)d: done %(done)d, failed %(failed)d.")
        lines = [
            queued % {"queued": self.queued, **counts},
            _(
                "Skipped %(skipped)d: %(taken)d had a picture or a job running, %(later)d had "
                "no text or were taken meanwhile."
            )
            % {"skipped": skipped, "taken": self.skipped_taken, "later": self.skipped_later},
        ]
        if not counts["rows"]:
            lines.append(_("Cost: nothing spent."))
        elif not counts["priced"]:
            lines.append(_("Cost: unknown (PAGE_IMAGES['PRICES'] has no price for them)."))
        elif counts["priced"] < counts["rows"]:
            known = counts["total_cost"] or Decimal(0)
            unpriced = counts["rows"] - counts["priced"]
            lines.append(
                ngettext(
                    "Cost: $%(cost)s known; %(count)d generation(s) have no price (cost unknown).",
                    "Cost: $%(cost)s known; %(count)d generation(s) have no price (cost unknown).",
                    unpriced,
                )
                % {"cost": f"{known:.2f}", "count": unpriced}
            )
        else:
            lines.append(_("Cost: $%(cost)s.") % {"cost": f"{counts['total_cost']:.2f}"})
        left = self.todo.count()
        if left:
            lines.append(
                ngettext(
                    "%(count)d record(s) still have no picture: run the command again.",
                    "%(count)d record(s) still have no picture: run the command again.",
                    left,
                )
                % {"count": left}
            )
        return "\n".join(lines)
