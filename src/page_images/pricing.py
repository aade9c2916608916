"""What a picture costs, by the site's price table rather than by what the provider says.

Providers' own figures are often missing or wrong (LiteLLM reports none or a wrong one for Imagen,
Azure and the newer gpt-image models), and a budget cannot be kept with a figure that arrives, if
at all, after the money is spent. So every picture is priced from a table of USD per picture by
model, size and quality: the shipped one below, dated, with the site's ``PAGE_IMAGES["PRICES"]``
over it. The provider's figure is still recorded beside ours (``Generation.provider_cost``), so a
site can see where the two part.

The table's shape, at every level a price or a dict one level down, ``"*"`` standing for any key
not named::

    {
        "gpt-image-1": {                        # model, with or without "openai/" in front
            "1024x1024": {"low": "0.011", "medium": "0.042", "high": "0.167", "auto": "0.167"},
            "*": {"low": "0.016", ...},          # every other size
        },
        "dall-e-2": {"1024x1024": "0.020"},      # one price for every quality of that size
        "my-flat-model": "0.04",                 # one price for everything
    }

A quality of None (the provider's default) is looked up as ``"auto"``. A site's entry for a model
replaces the shipped entry for that model whole, so a partial override cannot mix two price lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from django.utils.translation import gettext

from page_images.conf import app_settings

#: The backend that paints placeholders on this machine: it costs nothing, whatever its "model".
LOCAL_BACKEND = "page_images.backends.local.LocalBackend"

#: When the shipped prices were taken, and from where. Prices change: a site that pays other
#: prices (a discount, Azure, a newer model) names them in PAGE_IMAGES["PRICES"].
PRICES_TAKEN = "2026-12-03"

_GPT_IMAGE_SIZES = ("1024x1024", "1024x1536", "1536x1024")


def _by_quality(low: tuple[str, str], medium: tuple[str, str], high: tuple[str, str]) -> Any:
    """A gpt-image table from (square, portrait or landscape) prices per quality. "auto" lets the
    model choose, so it is priced as "high": a budget is never counted short."""
    table: dict[str, Any] = {}
    for size in _GPT_IMAGE_SIZES:
        index = 0 if size == "1024x1024" else 1
        table[size] = {
            "low": low[index],
            "medium": medium[index],
            "high": high[index],
            "auto": high[index],
        }
    return table


#: USD per picture, as of PRICES_TAKEN.
DEFAULT_PRICES: dict[str, Any] = {
    # Read on OpenAI's own model page (developers.openai.com/api/docs/models/gpt-image-1-mini).
    "gpt-image-1-mini": _by_quality(("0.005", "0.006"), ("0.011", "0.015"), ("0.036", "0.052")),
    # OpenAI's published per-picture table as quoted, identically, by several providers that
    # resell the model (fal.ai, BurnCloud) and OpenAI's community forum; not read on OpenAI's own
    # page here. The output tokens of a picture are billed, so the exact figure varies by a few
    # hundredths of a cent.
    "gpt-image-1": _by_quality(("0.011", "0.016"), ("0.042", "0.063"), ("0.167", "0.25")),
    # Not verified: only resellers' pages (fal.ai, Runware, APIYI) were found, and they differ
    # by a tenth of a cent on landscape; the portrait figure is used for both.
    "gpt-image-1.5": _by_quality(("0.009", "0.013"), ("0.034", "0.051"), ("0.133", "0.200")),
    # OpenAI has shut DALL·E 3 and 2 down and its pages list no price any more; these are its
    # pricing page's last figures as copies of it show them (openai.com/pricing, December 2023),
    # kept for sites whose provider still serves the models.
    "dall-e-3": {
        "1024x1024": {"standard": "0.040", "hd": "0.080", "auto": "0.040"},
        "1024x1792": {"standard": "0.080", "hd": "0.120", "auto": "0.080"},
        "1792x1024": {"standard": "0.080", "hd": "0.120", "auto": "0.080"},
    },
    "dall-e-2": {"256x256": "0.016", "512x512": "0.018", "1024x1024": "0.020"},
    # The LocalBackend's pictures, painted on this machine.
    "local": "0",
}


class _Asks(Protocol):
    """What a generation asks for (a ``GenerationSpec`` or a ``Generation`` row)."""

    @property
    def size(self) -> str: ...
    @property
    def quality(self) -> Any: ...
    @property
    def variants(self) -> int: ...


def prices() -> dict[str, Any]:
    """The table in force: the shipped prices with the site's models over them."""
    return {**DEFAULT_PRICES, **app_settings.PRICES}


def model_keys(model: str) -> list[str]:
    """The names ``model`` may be listed under: as given, then without its provider prefix
    ("openai/gpt-image-1" → "gpt-image-1"), so one entry serves OpenAI, LiteLLM and Azure names."""
    name = str(model or "").strip()
    keys = [name]
    if "/" in name:
        keys.append(name.rsplit("/", 1)[1])
    return [key for key in keys if key]


def to_decimal(value: Any) -> Decimal:
    """A price or an amount of money from a setting: a number or a string such as ``"0.04"``.

    Raises ``ValueError`` for anything else (a float is taken by its shortest text, 0.1 → 0.1).
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an amount of money")
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValueError(f"{value!r} is not an amount of money, such as '0.04'") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{value!r} is not an amount of money ≥ 0")
    return amount


def _lookup(node: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(node, Mapping):
            break
        node = node[key] if key in node else node.get("*")
    return node


def unit_price(model: str, size: str, quality: str | None) -> Decimal | None:
    """USD for one picture, or None when the table does not price it."""
    table = prices()
    entry = next((table[key] for key in model_keys(model) if key in table), None)
    value = _lookup(entry, (str(size).lower(), str(quality or "auto").lower()))
    if value is None or isinstance(value, Mapping):
        return None
    try:
        return to_decimal(value)
    except ValueError:  # the system check E075 names it; a job never fails on a price
        return None


def price(
    model: str, size: str, quality: str | None, n: int = 1, *, backend: str | None = None
) -> Decimal | None:
    """USD for ``n`` pictures of ``model`` at ``size`` and ``quality``; None when unknown.

    ``backend``, when given, is the backend's dotted path: the LocalBackend costs nothing, whatever
    model its options name.
    """
    if backend == LOCAL_BACKEND:
        return Decimal(0)
    each = unit_price(model, size, quality)
    return None if each is None else each * max(0, n)


def estimate(spec: _Asks | None = None, n: int = 1, *, preset: str | None = None) -> Decimal | None:
    """What ``n`` generations like ``spec`` would cost with today's backend, model and prices.

    ``spec`` is a ``GenerationSpec`` (what a click asks for) or a ``Generation`` row; None means
    what the settings ask for now (SIZE and QUALITY, or ``preset``'s, times VARIANTS): the
    backfill's ``--dry-run`` and the admin action use that. None is returned when the table has
    no price for the model, never a guess.
    """
    if spec is not None:
        size, quality, variants = spec.size, spec.quality or None, spec.variants
    else:
        chosen = app_settings.PRESETS.get(preset or "", {})
        size = str(chosen.get("size") or app_settings.SIZE)
        quality = chosen.get("quality", app_settings.QUALITY)
        variants = app_settings.VARIANTS
    model = str(app_settings.OPTIONS.get("model") or "")
    return price(model, size, quality, max(1, variants) * n, backend=app_settings.BACKEND)


def table_problems(table: Any) -> list[str]:
    """What is wrong with a ``PRICES`` table, one sentence each (for the system check E075), in
    the active language: each follows ``PAGE_IMAGES['PRICES']``."""
    if not isinstance(table, Mapping):
        problem = gettext("must be a dict of model names, not %(type)s")
        return [" " + problem % {"type": type(table).__name__}]
    problems: list[str] = []

    def walk(node: Any, path: str, depth: int) -> None:
        if isinstance(node, Mapping) and depth < 3:
            for key, value in node.items():
                walk(value, f"{path}[{key!r}]", depth + 1)
            return
        try:
            to_decimal(node)
        except ValueError:
            problems.append(
                gettext("%(path)s = %(value)s is not a price in USD, such as '0.04'")
                % {"path": path, "value": repr(node)}
            )

    for model, entry in table.items():
        walk(entry, f"[{model!r}]", 1)
    return problems
