"""Quotas: how many pictures, or how much money, each user and the whole site may spend.

``PAGE_IMAGES["QUOTAS"]`` names limits per user and for the site, per calendar day or month in
the site's ``TIME_ZONE``, by count of pictures or by USD::

    "QUOTAS": {
        "per_user": {"day": 20, "month_usd": "10.00"},
        "site": {"month": 2000, "month_usd": "200.00"},
    }

Keys: ``day`` and ``month`` (pictures), ``day_usd`` and ``month_usd`` (money, by the price table
of :mod:`page_images.pricing`). Every limit named must have room for a request, or the request is
refused with the editor's sentence (:class:`QuotaExceededError`) and nothing is claimed.

What is counted comes from the history (:class:`~page_images.history.Generation`), not from a
counter beside it, so that nothing can drift: a picture counts once asked for (queued, running,
in review, done); one that failed or was cancelled counts only if it cost something (candidates
made and then discarded were paid for). Money counts a finished generation at its ``cost`` (or
the provider's figure when the table had no price), and a queued or running one at its
``estimated_cost``, written at the click: a burst of clicks cannot overshoot a budget while the
first jobs are still running.

Two clicks at once must not both take the last picture. The check runs inside the transaction
that claims the record and writes its history row (``request_generation(enforce_quota=True)``),
after taking a row lock that every click under the same quota waits on: the site's lock (the
history model's content-type row) when a site-wide limit is set, else the user's own row. The
second click then counts the first one's row, committed. The lock is held for the claim's few
milliseconds; with no QUOTAS nothing is locked or counted. This needs a database with row locks
and READ COMMITTED isolation (PostgreSQL, MySQL and MariaDB as Django configures them); SQLite
has no row locks, and two clicks in the same instant may pass one picture over a limit there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import DEFAULT_DB_ALIAS
from django.db.models import Case, DecimalField, Q, Sum, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from page_images import pricing
from page_images.conf import app_settings
from page_images.exceptions import QuotaExceededError
from page_images.history import OPEN, Generation

if TYPE_CHECKING:
    from django.http import HttpRequest

#: The quota's scopes: each user's own, and the whole site's.
SCOPES = ("per_user", "site")
#: A limit's key → (period, unit).
KEYS = {
    "day": ("day", "images"),
    "month": ("month", "images"),
    "day_usd": ("day", "usd"),
    "month_usd": ("month", "usd"),
}
#: The generations that count whatever they cost: asked for, and not given up.
COUNTED = (*OPEN, Generation.Status.REVIEW, Generation.Status.DONE)
#: A quota is shown to the editor once this share of it or less is left.
LOW_SHARE = Decimal("0.2")

_MONEY = DecimalField(max_digits=12, decimal_places=4)
_ZERO = Value(Decimal(0), output_field=_MONEY)
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class Limit:
    """One limit of the settings, with what has been used of it in its current period."""

    scope: str
    period: str
    unit: str
    limit: Decimal
    used: Decimal = Decimal(0)

    @property
    def remaining(self) -> Decimal:
        return max(Decimal(0), self.limit - self.used)

    @property
    def share_left(self) -> Decimal:
        return self.remaining / self.limit if self.limit else Decimal(0)

    def need(self, count: int, cost: Decimal | None) -> Decimal:
        return Decimal(count) if self.unit == "images" else cost or Decimal(0)

    def allows(self, count: int, cost: Decimal | None) -> bool:
        """Room for the request; a budget spent refuses even a picture it cannot price."""
        if self.unit == "usd" and self.remaining <= 0:
            return False
        return self.used + self.need(count, cost) <= self.limit

    def _numbers(self) -> dict[str, str]:
        if self.unit == "images":
            return {"left": str(int(self.remaining)), "limit": str(int(self.limit))}
        # Money in the reader's notation: "0.50" in English, "0,50" in German.
        return {
            "left": number_format(self.remaining.quantize(_CENT), 2),
            "limit": number_format(self.limit.quantize(_CENT), 2),
        }

    @property
    def message(self) -> str:
        """What is left, for the editor: "3 of 20 images left today"."""
        site = self.scope == "site"
        if self.unit == "images":
            count = int(self.limit)
            if self.period == "day":
                text = (
                    ngettext(
                        "%(left)s of this site's %(limit)s image left today",
                        "%(left)s of this site's %(limit)s images left today",
                        count,
                    )
                    if site
                    else ngettext(
                        "%(left)s of %(limit)s image left today",
                        "%(left)s of %(limit)s images left today",
                        count,
                    )
                )
            else:
                text = (
                    ngettext(
                        "%(left)s of this site's %(limit)s image left this month",
                        "%(left)s of this site's %(limit)s images left this month",
                        count,
                    )
                    if site
                    else ngettext(
                        "%(left)s of %(limit)s image left this month",
                        "%(left)s of %(limit)s images left this month",
                        count,
                    )
                )
        elif self.period == "day":
            text = (
                _("$%(left)s of this site's $%(limit)s left today")
                if site
                else _("$%(left)s of $%(limit)s left today")
            )
        else:
            text = (
                _("$%(left)s of this site's $%(limit)s left this month")
                if site
                else _("$%(left)s of $%(limit)s left this month")
            )
        return text % self._numbers()

    def refusal(self, count: int) -> str:
        """Why a request does not fit, for the editor, with when it will."""
        numbers = {**self._numbers(), "count": str(count)}
        if self.remaining > 0 and self.unit == "images":
            text = (
                _("Only %(left)s of today's images are left, and this asks for %(count)s.")
                if self.period == "day"
                else _(
                    "Only %(left)s of this month's images are left, and this asks for %(count)s."
                )
            )
        elif self.remaining > 0:
            text = (
                _("This would cost more than the $%(left)s left of today's image budget.")
                if self.period == "day"
                else _("This would cost more than the $%(left)s left of this month's image budget.")
            )
        else:
            text = _SPENT[(self.scope, self.period, self.unit)]()
        return text % numbers


_SPENT = {
    ("per_user", "day", "images"): lambda: _(
        "You have used today's %(limit)s images. More tomorrow."
    ),
    ("per_user", "month", "images"): lambda: _(
        "You have used this month's %(limit)s images. More next month."
    ),
    ("per_user", "day", "usd"): lambda: _("You have spent today's image budget. More tomorrow."),
    ("per_user", "month", "usd"): lambda: _(
        "You have spent this month's image budget. More next month."
    ),
    ("site", "day", "images"): lambda: _(
        "This site's %(limit)s images for today are used up. More tomorrow."
    ),
    ("site", "month", "images"): lambda: _(
        "This site's %(limit)s images for this month are used up. Ask an administrator."
    ),
    ("site", "day", "usd"): lambda: _(
        "This site's image budget for today is spent. More tomorrow."
    ),
    ("site", "month", "usd"): lambda: _(
        "This site's monthly image budget is spent. Ask an administrator."
    ),
}


@dataclass(frozen=True)
class QuotaStatus:
    """Every limit that applies to a user, with what is used of each: what the editor is shown."""

    limits: tuple[Limit, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.limits)

    @property
    def binding(self) -> Limit | None:
        """The limit with the smallest share left: the one that will refuse first."""
        return min(self.limits, key=lambda limit: limit.share_left, default=None)

    @property
    def remaining(self) -> Decimal | None:
        """What is left of the binding limit (pictures, or USD); None without quotas."""
        binding = self.binding
        return None if binding is None else binding.remaining

    @property
    def message(self) -> str:
        binding = self.binding
        return "" if binding is None else binding.message

    @property
    def low(self) -> bool:
        """Worth showing: 20 % or less of a limit is left."""
        binding = self.binding
        return binding is not None and binding.share_left <= LOW_SHARE


def _applies_to(user: Any) -> tuple[str, ...]:
    scopes = app_settings.QUOTAS
    return tuple(
        scope
        for scope in SCOPES
        if scopes.get(scope) and (scope == "site" or getattr(user, "is_authenticated", False))
    )


def configured(user: Any) -> list[Limit]:
    """The limits that apply to ``user`` (site-wide ones first), nothing used yet."""
    quotas = app_settings.QUOTAS
    limits = []
    for scope in sorted(_applies_to(user), key=lambda scope: scope != "site"):
        for key, value in quotas[scope].items():
            period, unit = KEYS[key]
            limits.append(Limit(scope, period, unit, pricing.to_decimal(value)))
    return limits


def period_starts(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The start of today and of this month, in the site's TIME_ZONE (not the visitor's)."""
    now = now or timezone.now()
    if not settings.USE_TZ:
        day = datetime.combine(now.date(), time.min)
        return day, day.replace(day=1)
    zone = timezone.get_default_timezone()
    local = timezone.localtime(now, zone)
    day = datetime.combine(local.date(), time.min)
    return timezone.make_aware(day, zone), timezone.make_aware(day.replace(day=1), zone)


def _used(user: Any, limits: list[Limit], now: datetime | None, using: str) -> list[Limit]:
    """``limits`` with what is used of each: one aggregate query over the history."""
    day, month = period_starts(now)
    rows = Generation.objects.using(using).filter(
        created_at__gte=month if any(limit.period == "month" for limit in limits) else day
    )
    if all(limit.scope == "per_user" for limit in limits):
        rows = rows.filter(user=user.pk)  # the (user, created_at) index
    rows = rows.filter(Q(status__in=COUNTED) | Q(cost__gt=0) | Q(provider_cost__gt=0))
    money = Case(
        When(status__in=OPEN, then=Coalesce("estimated_cost", _ZERO)),
        default=Coalesce("cost", "provider_cost", _ZERO),
        output_field=_MONEY,
    )
    sums: dict[str, Sum] = {}
    for index, limit in enumerate(limits):
        condition = Q(user=user.pk) if limit.scope == "per_user" else Q()
        if limit.period == "day":
            condition &= Q(created_at__gte=day)
        if limit.unit == "images":
            sums[f"used{index}"] = Sum("variants", filter=condition or None, default=0)
        else:
            sums[f"used{index}"] = Sum(money, filter=condition or None, default=Decimal(0))
    totals = rows.aggregate(**sums)
    return [
        Limit(limit.scope, limit.period, limit.unit, limit.limit, Decimal(totals[f"used{index}"]))
        for index, limit in enumerate(limits)
    ]


def remaining(
    user: Any, *, now: datetime | None = None, using: str = DEFAULT_DB_ALIAS
) -> QuotaStatus:
    """What is left of every quota that applies to ``user``; an empty status without QUOTAS."""
    limits = configured(user)
    if not limits:
        return QuotaStatus()
    return QuotaStatus(tuple(_used(user, limits, now, using)))


def _lock(user: Any, limits: list[Limit], using: str) -> None:
    """Make every click under the same quotas wait for this one's transaction (see above)."""
    if any(limit.scope == "site" for limit in limits):
        meta = Generation._meta
        rows: Any = ContentType.objects.using(using).filter(
            app_label=meta.app_label, model=meta.model_name
        )
    else:
        rows = get_user_model()._base_manager.using(using).filter(pk=user.pk)
    list(rows.select_for_update().values_list("pk", flat=True))


def enforce(
    user: Any,
    count: int = 1,
    cost: Decimal | None = None,
    *,
    lock: bool = False,
    now: datetime | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> QuotaStatus:
    """Raise :class:`QuotaExceededError` unless every quota has room for ``count`` more pictures
    costing ``cost`` (by default, priced from the settings' model, size and quality).

    Returns the status as checked. With ``lock=True`` (inside a transaction), concurrent callers
    under the same quotas are serialised until this one's transaction ends: the caller writes
    its history row in that transaction, so the next one counts it.
    """
    limits = configured(user)
    if not limits:
        return QuotaStatus()
    if cost is None and any(limit.unit == "usd" for limit in limits):
        each = pricing.price(
            str(app_settings.OPTIONS.get("model") or ""),
            app_settings.SIZE,
            app_settings.QUALITY,
            backend=app_settings.BACKEND,
        )
        cost = None if each is None else each * count
    if lock:
        _lock(user, limits, using)
    status = QuotaStatus(tuple(_used(user, limits, now, using)))
    for limit in status.limits:
        if not limit.allows(count, cost):
            raise QuotaExceededError(limit.refusal(count), status)
    return status


def enforce_generations(
    user: Any, n: int, *, preset: str | None = None, now: datetime | None = None
) -> QuotaStatus:
    """Room for ``n`` generations as the settings (and ``preset``) ask for them now: the check of
    an admin action or a backfill before it calls ``request_generations()``.

    Not serialised with concurrent clicks (no lock is held across the batch's claims): a click in
    the same instant may still take the last picture, and the batch then passes the limit by it.
    """
    images = n * max(1, app_settings.VARIANTS)
    return enforce(user, images, pricing.estimate(n=n, preset=preset), now=now)


def display_status(request: HttpRequest | None, user: Any) -> QuotaStatus:
    """The quota status to show ``user`` beside a chip or in the prompt panel: ``status.low``
    says whether to show it, ``status.message`` what to say (``page_images/quota.html``).

    Counted once per request (a page of fifty chips costs one query, not fifty).
    """
    if not _applies_to(user):
        return QuotaStatus()
    cache: dict[Any, QuotaStatus] = {}
    if request is not None:
        cache = request.__dict__.setdefault("_page_images_quota", {})
    key = getattr(user, "pk", None)
    if key not in cache:
        cache[key] = remaining(user)
    return cache[key]
