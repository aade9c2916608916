"""System checks: a wrong setting is reported at start-up, with the key to change, not mid-job.

Ids are never reused. E0xx are errors (the app cannot work), W0xx warnings (it works, but
probably not as intended). E02x/W02x belong to LiteLLMBackend, E03x to LocalBackend, E04x/W04x
to the event buses, W05x to Celery's configuration as the click sees it, E06x to the editor's
tools (the prompt panel, presets, aspect ratios, review and the pictures kept), E07x/W07x to the
price table and the quotas, E08x/W08x to alt text.

``PageImagesConfig.ready()`` registers them, with tags, so this module is imported in every web
process's ``django.setup()``. What only a check needs (the event buses, the rate parser, Celery) is
imported inside the check that uses it: start-up pays for the registration alone. Warnings that
only mean something in production (the placeholder backend, loopback downloads) are deployment
checks, shown by ``manage.py check --deploy``.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.utils.functional import Promise
from django.utils.module_loading import import_string

from page_images.backends import build_backend, describer_config
from page_images.conf import (
    ALT_TEXT_DEFAULTS,
    DEFAULTS,
    SETTING_NAME,
    app_settings,
    parse_ratio,
    parse_size,
)
from page_images.exceptions import PageImagesConfigurationError, UnsupportedAspectRatioError
from page_images.models import ImageGeneratingMixin, image_generating_models

_POSITIVE_NUMBERS = (
    "MAX_BYTES",
    "MAX_PIXELS",
    "DOWNLOAD_TIMEOUT",
    "CLAIM_TIMEOUT",
    "QUEUE_TIMEOUT",
    "TASK_SOFT_TIME_LIMIT",
    "TASK_TIME_LIMIT",
    "RETRY_BACKOFF",
    "RETRY_BACKOFF_MAX",
    "POLL_INTERVAL",
    "STREAM_MAX_AGE",
    "STREAMS_PER_SESSION",
)
_KNOWN_FORMATS = {"PNG", "JPEG", "WEBP"}
#: Settings that switch something on or off: a string such as "False" would read as on.
_SWITCHES = ("PROVENANCE", "AI_LABEL")


def _error(message: str, id: str, hint: str | None = None) -> Error:
    return Error(message, hint=hint, id=id)


def _merged() -> dict[str, Any] | None:
    """The settings with their defaults; None when ``PAGE_IMAGES`` is not a dict (E001)."""
    raw = getattr(settings, SETTING_NAME, {})
    return {**DEFAULTS, **raw} if isinstance(raw, dict) else None


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    from page_images.events import check_events  # here, not at import: see the module docstring

    raw = getattr(settings, SETTING_NAME, {})
    if not isinstance(raw, dict):
        return [
            _error(f"{SETTING_NAME} must be a dict, not {type(raw).__name__}.", "page_images.E001")
        ]
    merged = {**DEFAULTS, **raw}
    messages: list[CheckMessage] = []
    messages += _check_keys(SETTING_NAME, raw, DEFAULTS, "page_images.E002")
    messages += _check_numbers(merged)
    messages += _check_switches(merged)
    messages += _check_size(merged["SIZE"])
    messages += _check_formats(merged["ALLOWED_FORMATS"])
    messages += _check_backend(merged["BACKEND"], merged["OPTIONS"])
    messages += _check_dotted_path("NOTIFIER", merged["NOTIFIER"], "page_images.E009")
    if merged["PERMISSION"] is not None:
        messages += _check_dotted_path("PERMISSION", merged["PERMISSION"], "page_images.E013")
    messages += _check_rate(merged["RATE_LIMIT"])
    messages += check_events(merged["EVENTS"])
    messages += _check_costs(merged)
    messages += check_editing(merged)
    messages += _check_alt_text(merged["ALT_TEXT"])
    return messages


def _check_keys(
    where: str, given: dict[str, Any], known: dict[str, Any], check_id: str
) -> list[CheckMessage]:
    """Typos: keys of the dict ``where`` that this version does not know."""
    unknown = sorted(set(given) - set(known))
    if not unknown:
        return []
    return [
        _error(
            f"{where} has unknown keys: {', '.join(unknown)}.",
            check_id,
            hint=f"Known keys: {', '.join(sorted(known))}.",
        )
    ]


def check_deployment(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """What is fine on a developer's machine and wrong in production (``check --deploy``)."""
    merged = _merged() or DEFAULTS
    messages: list[CheckMessage] = []
    if merged["BACKEND"] == DEFAULTS["BACKEND"]:
        messages.append(
            Warning(
                f"{SETTING_NAME}['BACKEND'] is the LocalBackend: placeholder pictures only.",
                hint="Set it to 'page_images.backends.litellm.LiteLLMBackend' with a model in "
                "OPTIONS to make real illustrations.",
                id="page_images.W001",
            )
        )
    if merged["ALLOW_LOOPBACK_DOWNLOADS"]:
        messages.append(
            Warning(
                f"{SETTING_NAME}['ALLOW_LOOPBACK_DOWNLOADS'] is on.",
                hint="It exists for tests against a local fake provider; turn it off.",
                id="page_images.W002",
            )
        )
    return messages


def _check_numbers(merged: dict[str, Any]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for key in _POSITIVE_NUMBERS:
        value = merged[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            messages.append(
                _error(
                    f"{SETTING_NAME}['{key}'] must be a positive number, not {value!r}.",
                    "page_images.E005",
                )
            )
    retries = merged["MAX_RETRIES"]
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        messages.append(
            _error(
                f"{SETTING_NAME}['MAX_RETRIES'] must be a whole number ≥ 0, not {retries!r}.",
                "page_images.E005",
            )
        )
    if messages:
        return messages
    if merged["TASK_SOFT_TIME_LIMIT"] >= merged["TASK_TIME_LIMIT"]:
        messages.append(
            _error(
                f"{SETTING_NAME}['TASK_SOFT_TIME_LIMIT'] must be shorter than TASK_TIME_LIMIT.",
                "page_images.E006",
                hint="The soft limit lets the job record a readable error before the hard kill.",
            )
        )
    if merged["CLAIM_TIMEOUT"] <= merged["TASK_TIME_LIMIT"]:
        messages.append(
            _error(
                f"{SETTING_NAME}['CLAIM_TIMEOUT'] ({merged['CLAIM_TIMEOUT']}) must be longer than "
                f"TASK_TIME_LIMIT ({merged['TASK_TIME_LIMIT']}).",
                "page_images.E006",
                hint="Otherwise a job that is still running could be taken for dead and run twice.",
            )
        )
    return messages


def _check_switches(merged: dict[str, Any]) -> list[CheckMessage]:
    return [
        _error(
            f"{SETTING_NAME}['{key}'] must be True or False, not {merged[key]!r}.",
            "page_images.E016",
        )
        for key in _SWITCHES
        if not isinstance(merged[key], bool)
    ]


def _check_size(size: Any) -> list[CheckMessage]:
    try:
        parse_size(size)
    except ValueError as exc:
        return [_error(f"{SETTING_NAME}['SIZE']: {exc}.", "page_images.E004")]
    return []


def _check_formats(formats: Any) -> list[CheckMessage]:
    if isinstance(formats, str) or not isinstance(formats, Iterable):
        given = set()
    else:
        given = {str(f).upper() for f in formats}
    if not given or not given <= _KNOWN_FORMATS:
        return [
            _error(
                f"{SETTING_NAME}['ALLOWED_FORMATS'] must be a list drawn from "
                f"{', '.join(sorted(_KNOWN_FORMATS))}, not {formats!r}.",
                "page_images.E007",
            )
        ]
    return []


def _check_dotted_path(key: str, path: Any, check_id: str) -> list[CheckMessage]:
    try:
        target = import_string(str(path))
    except ImportError as exc:
        return [
            _error(f"{SETTING_NAME}['{key}'] = {path!r} could not be imported: {exc}", check_id)
        ]
    if not callable(target):
        return [_error(f"{SETTING_NAME}['{key}'] = {path!r} is not callable.", check_id)]
    return []


def _check_rate(rate: Any) -> list[CheckMessage]:
    from page_images.ratelimit import parse_rate

    if rate is None:
        return []
    try:
        parse_rate(str(rate))
    except ValueError as exc:
        return [_error(f"{SETTING_NAME}['RATE_LIMIT']: {exc}.", "page_images.E014")]
    return []


def _check_backend(path: Any, options: Any) -> list[CheckMessage]:
    if not isinstance(options, dict):
        return [
            _error(
                f"{SETTING_NAME}['OPTIONS'] must be a dict, not {type(options).__name__}.",
                "page_images.E008",
            )
        ]
    try:
        backend = build_backend(str(path), options)
    except PageImagesConfigurationError as exc:
        check_id = "page_images.E008" if "OPTIONS" in str(exc) else "page_images.E003"
        return [_error(str(exc), check_id)]
    return backend.check()


# --- The editor's tools (E060-E066) ----------------------------------------------------------

_FLAGS = ("PROMPT_PANEL", "REVIEW", "REGENERATE")
_PRESET_KEYS = {"label", "prompt", "size", "quality"}
#: The longest preset name, aspect ratio and quality the history's columns hold.
_PRESET_NAME_MAX = 64
_RATIO_MAX = 16
_QUALITY_MAX = 16
_VARIANTS_MAX = 10
#: OpenAI's ``partial_images`` is 0-3; no provider streams more.
_PREVIEWS_MAX = 3


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_editing(merged: dict[str, Any]) -> list[CheckMessage]:
    """The settings of the prompt panel, presets, aspect ratios, review and kept pictures."""
    messages = _check_template(merged["PROMPT_TEMPLATE"])
    length = merged["MAX_PROMPT_LENGTH"]
    if not _whole(length) or length < 1:
        messages.append(
            _error(
                f"{SETTING_NAME}['MAX_PROMPT_LENGTH'] must be a whole number ≥ 1, not {length!r}.",
                "page_images.E065",
            )
        )
    messages += _check_presets(merged["PRESETS"])
    messages += _check_ratios(merged)
    variants = merged["VARIANTS"]
    if not _whole(variants) or not 1 <= variants <= _VARIANTS_MAX:
        messages.append(
            _error(
                f"{SETTING_NAME}['VARIANTS'] must be a whole number from 1 to {_VARIANTS_MAX}, "
                f"not {variants!r}.",
                "page_images.E063",
                hint="Providers make at most 10 pictures per call (OpenAI's n).",
            )
        )
    previews = merged["PREVIEWS"]
    if not _whole(previews) or not 0 <= previews <= _PREVIEWS_MAX:
        messages.append(
            _error(
                f"{SETTING_NAME}['PREVIEWS'] must be a whole number from 0 (none) to "
                f"{_PREVIEWS_MAX}, not {previews!r}.",
                "page_images.E067",
                hint="It is how many rough versions to ask for while a picture is drawn "
                "(OpenAI's partial_images).",
            )
        )
    keep = merged["KEEP_PICTURES"]
    if keep is not None and (not _whole(keep) or keep < 0):
        messages.append(
            _error(
                f"{SETTING_NAME}['KEEP_PICTURES'] must be None (keep every file) or a whole "
                f"number ≥ 0, not {keep!r}.",
                "page_images.E064",
            )
        )
    for key in _FLAGS:
        if not isinstance(merged[key], bool):
            messages.append(
                _error(
                    f"{SETTING_NAME}['{key}'] must be True or False, not {merged[key]!r}.",
                    "page_images.E066",
                )
            )
    return messages


def _check_template(template: Any) -> list[CheckMessage]:
    """E060: a format string whose fields every model using the mixin has ({prompt} is its own)."""
    if template is None:
        return []
    if not isinstance(template, str):
        problem = f"must be a string or None, not {type(template).__name__}"
    else:
        try:
            names = {
                field for _, field, _, _ in string.Formatter().parse(template) if field is not None
            }
        except ValueError as exc:
            names, problem = set(), f"is not a format string: {exc}"
        else:
            # "{story.title}", "{tags[0]}": the record's own attribute is the first part.
            roots = {name.split(".", 1)[0].split("[", 1)[0] for name in names}
            problem = _template_fields_problem(roots)
    if not problem:
        return []
    return [
        _error(
            f"{SETTING_NAME}['PROMPT_TEMPLATE'] {problem}.",
            "page_images.E060",
            hint="For example 'Watercolour illustration of: {prompt}' ({prompt} is the record's "
            "own prompt) or a field every model using the mixin has, '{title}'.",
        )
    ]


def _template_fields_problem(roots: set[str]) -> str:
    if "" in roots or any(root.isdigit() for root in roots):
        return "has a positional field ({} or {0}): name the record's field"
    for model in image_generating_models():
        missing = sorted(root for root in roots - {"prompt"} if not hasattr(model, root))
        if missing:
            return f"names {', '.join(missing)}, which {model._meta.label} does not have"
    return ""


def _check_presets(presets: Any) -> list[CheckMessage]:
    """E061: ``{"name": {"label", "prompt", "size", "quality"}}``."""
    if not isinstance(presets, dict):
        return [
            _error(
                f"{SETTING_NAME}['PRESETS'] must be a dict of name to preset, not "
                f"{type(presets).__name__}.",
                "page_images.E061",
            )
        ]
    messages: list[CheckMessage] = []
    for name, preset in presets.items():
        problem = _preset_problem(name, preset)
        if problem:
            messages.append(
                _error(
                    f"{SETTING_NAME}['PRESETS'][{name!r}] {problem}.",
                    "page_images.E061",
                    hint="A preset is {'label': ..., 'prompt': words added to the prompt (may "
                    "place it with {prompt}), 'size': 'WIDTHxHEIGHT', 'quality': ...}.",
                )
            )
    return messages


def _preset_problem(name: Any, preset: Any) -> str:
    if not isinstance(name, str) or not name or len(name) > _PRESET_NAME_MAX:
        return f"needs a name of 1 to {_PRESET_NAME_MAX} characters"
    if not isinstance(preset, dict):
        return f"must be a dict, not {type(preset).__name__}"
    unknown = sorted(set(map(str, preset)) - _PRESET_KEYS)
    if unknown:
        return f"has unknown keys: {', '.join(unknown)}"
    for key in ("label", "prompt"):
        value = preset.get(key, "")
        # A label may be gettext_lazy("Watercolour"): each editor reads it in their language.
        if not isinstance(value, str) and not (key == "label" and isinstance(value, Promise)):
            return f"'{key}' must be a string"
    quality = preset.get("quality")
    if quality is not None and (not isinstance(quality, str) or len(quality) > _QUALITY_MAX):
        return f"'quality' must be None or a string of at most {_QUALITY_MAX} characters"
    if preset.get("size") is not None:
        try:
            parse_size(preset["size"])
        except ValueError as exc:
            return f"'size': {exc}"
    return ""


def _check_ratios(merged: dict[str, Any]) -> list[CheckMessage]:
    """E062: "W:H" ratios the configured backend can draw (OpenAI's models take a fixed list)."""
    ratios = merged["ASPECT_RATIOS"]
    if isinstance(ratios, str) or not isinstance(ratios, Iterable):
        return [
            _error(
                f"{SETTING_NAME}['ASPECT_RATIOS'] must be a list such as ['1:1', '3:2'], not "
                f"{ratios!r}.",
                "page_images.E062",
            )
        ]
    messages: list[CheckMessage] = []
    backend = None
    try:
        backend = build_backend(str(merged["BACKEND"]), dict(merged["OPTIONS"]))
        size = parse_size(merged["SIZE"])
    except (PageImagesConfigurationError, TypeError, ValueError):
        backend = None  # E003, E004 or E008 says why
    for ratio in ratios:
        try:
            parse_ratio(ratio)
            if len(str(ratio)) > _RATIO_MAX:
                raise ValueError(f"{ratio!r} is longer than {_RATIO_MAX} characters")
            if backend is not None:
                backend.size_for(str(ratio), size)
        except (ValueError, UnsupportedAspectRatioError) as exc:
            messages.append(_error(f"{SETTING_NAME}['ASPECT_RATIOS']: {exc}", "page_images.E062"))
    return messages


def _check_alt_text(config: Any) -> list[CheckMessage]:
    """``ALT_TEXT``: None, or a dict of known keys whose describer can be built (E080)."""
    key = f"{SETTING_NAME}['ALT_TEXT']"
    if config is None:
        return []
    if not isinstance(config, dict):
        return [
            _error(
                f"{key} must be None or a dict, not {type(config).__name__}.", "page_images.E080"
            )
        ]
    messages: list[CheckMessage] = []
    messages += _check_keys(key, config, ALT_TEXT_DEFAULTS, "page_images.E080")
    merged = {**ALT_TEXT_DEFAULTS, **config}
    for number in ("MAX_LENGTH", "TIMEOUT"):
        value = merged[number]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            messages.append(
                _error(
                    f"{key}['{number}'] must be a positive number, not {value!r}.",
                    "page_images.E080",
                )
            )
    if not isinstance(merged["PROMPT"], str) or not merged["PROMPT"].strip():
        messages.append(_error(f"{key}['PROMPT'] must be a non-empty string.", "page_images.E080"))
    if not isinstance(merged["OPTIONS"], dict):
        messages.append(_error(f"{key}['OPTIONS'] must be a dict.", "page_images.E080"))
    if messages:
        return messages
    try:
        build_backend(*describer_config(merged), where=key)
    except PageImagesConfigurationError as exc:
        return [_error(str(exc), "page_images.E080")]
    return []


def check_models(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    found = image_generating_models()
    for model in found:
        messages += check_model(model)
    merged = _merged()
    if merged and merged["ALT_TEXT"] is not None and not any(m.image_alt_text_field for m in found):
        # Set on purpose and silently doing nothing: alt text is written only into a named field.
        messages.append(
            Warning(
                f"{SETTING_NAME}['ALT_TEXT'] is set, but no model names an image_alt_text_field: "
                "no alt text will be written.",
                hint="Add a text field for the alt text and name it in image_alt_text_field.",
                id="page_images.W080",
            )
        )
    return messages


def check_model(model: type[ImageGeneratingMixin]) -> list[CheckMessage]:
    """The messages about one model that uses the mixin (E010 to E012, E081)."""
    messages: list[CheckMessage] = []
    try:
        field = model._meta.get_field(model.image_field_name)
    except FieldDoesNotExist:
        field = None
    if not isinstance(field, models.FileField):
        messages.append(
            Error(
                f"image_field_name = {model.image_field_name!r} is not an ImageField or FileField "
                f"of {model._meta.label}.",
                obj=model,
                id="page_images.E010",
            )
        )
    overrides_prompt = model.get_image_prompt is not ImageGeneratingMixin.get_image_prompt
    if model.image_prompt_field:
        try:
            model._meta.get_field(model.image_prompt_field)
        except FieldDoesNotExist:
            messages.append(
                Error(
                    f"image_prompt_field = {model.image_prompt_field!r} is not a field of "
                    f"{model._meta.label}.",
                    obj=model,
                    id="page_images.E012",
                )
            )
    elif not overrides_prompt:
        messages.append(
            Error(
                f"{model._meta.label} does not say where its image prompt comes from.",
                hint="Set image_prompt_field = '<field name>' or override get_image_prompt().",
                obj=model,
                id="page_images.E011",
            )
        )
    messages += _check_alt_text_field(model)
    return messages


def _check_alt_text_field(model: type[ImageGeneratingMixin]) -> list[CheckMessage]:
    name = model.image_alt_text_field
    if not name:
        return []
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        field = None
    if isinstance(field, (models.CharField, models.TextField)):
        return []
    return [
        Error(
            f"image_alt_text_field = {name!r} is not a CharField or TextField of "
            f"{model._meta.label}.",
            hint="Add a text field for the alt text (blank=True), or set image_alt_text_field "
            "to None.",
            obj=model,
            id="page_images.E081",
        )
    ]


#: Broker URL schemes served by kombu's Redis transport, whose sockets wait forever by default.
_REDIS_SCHEMES = ("redis", "rediss", "sentinel", "socket")
_BROKER_TIMEOUTS = ("socket_timeout", "socket_connect_timeout")


def check_broker(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Warn when a Redis broker has no socket timeouts: a click could then wait forever.

    The trigger view queues the job inside the editor's request. Celery bounds the retries of a
    refused connection, but kombu's Redis sockets have no timeout of their own, so a broker that
    accepts the connection and never answers (a hung server, a dead link behind a load balancer)
    would hold the request, and the editor's chip, forever. The fix is one Celery setting.
    """
    if not _celery_runs_the_jobs():
        return []
    from celery import current_app

    url = current_app.conf.broker_write_url or current_app.conf.broker_url or ""
    if not isinstance(url, str) or url.split("://", 1)[0].split("+")[0] not in _REDIS_SCHEMES:
        return []
    options = current_app.conf.broker_transport_options or {}
    missing = [key for key in _BROKER_TIMEOUTS if options.get(key) is None]
    if not missing:
        return []
    return [
        Warning(
            f"Celery's Redis broker has no {' or '.join(missing)}: a broker that stops answering "
            "would hold a click's request forever.",
            hint="Set broker_transport_options = {'socket_timeout': 5, "
            "'socket_connect_timeout': 5} (CELERY_BROKER_TRANSPORT_OPTIONS in Django settings "
            "with the CELERY namespace).",
            id="page_images.W050",
        )
    ]


def _celery_runs_the_jobs() -> bool:
    """Celery is the runner and is installed (else check E090 or E091 reports it)."""
    from page_images import runners

    return app_settings.TASK_RUNNER == runners.CELERY and runners.installed("celery")


def _jobs_run_in_this_process() -> bool:
    """The jobs run in the process that enqueues them: eager or in-memory Celery, or the tasks
    framework's ImmediateBackend. Only there is an in-process bus right."""
    from page_images import runners

    if app_settings.TASK_RUNNER == runners.DJANGO_TASKS:
        return runners.runs_in_process()
    if not _celery_runs_the_jobs():
        return True  # nothing runs the jobs yet: E090 or E091 says so, not this warning
    from celery import current_app

    conf = current_app.conf
    return bool(conf.task_always_eager or str(conf.broker_url or "").startswith("memory:"))


def check_live_refresh(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Warn when the event bus cannot carry a worker's news to the web process (W041).

    A bus that stays inside one process is right only where the jobs run in that process too:
    eager Celery, or the in-memory transport. Anywhere else the worker's "picture stored" never
    reaches the open pages, and their spinners turn until a reload.
    """
    from page_images.events import build_bus, resolve

    merged = _merged()
    config = resolve(merged["EVENTS"]) if merged else None
    if config is None:
        return []
    try:
        bus = build_bus(config)
    except PageImagesConfigurationError:
        return []  # check_settings reports it (E040)
    if bus.supports_cross_process or _jobs_run_in_this_process():
        return []
    worker = "Celery worker" if _celery_runs_the_jobs() else "task worker"
    return [
        Warning(
            f"{SETTING_NAME}['EVENTS'] is {config['BACKEND']}, which does not reach a {worker} "
            "in another process: a page waits for its picture until it is reloaded.",
            hint="Use page_images.events.redis.RedisBus (with Redis) or "
            "page_images.events.files.FileBus (one machine), or set EVENTS to None so that "
            "pages poll.",
            id="page_images.W041",
        )
    ]


def check_urls(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Error when ``page_images.urls`` is missing, or shadowed by an earlier catch-all (E015).

    A CMS's ``include(wagtail_urls)`` or a ``<path:slug>`` page view placed before our include
    answers our URLs itself: every click would be that view's 404, and nothing on the page says
    why. Resolving our own URLs back is the one test that sees it.
    """
    from django.urls import NoReverseMatch, Resolver404, resolve, reverse

    from page_images import views

    try:
        path = reverse("page_images:trigger")
    except NoReverseMatch:
        return [
            Warning(
                "page_images.urls is not included in the URLconf: the chips have nowhere to post.",
                hint='Add path("page-images/", include("page_images.urls")) to urlpatterns.',
                id="page_images.W015",
            )
        ]
    try:
        found = resolve(path).func
    except Resolver404:  # pragma: no cover (reverse() only names paths that resolve)
        found = None
    if found is views.trigger:
        return []
    return [
        Error(
            f"{path} is answered by {getattr(found, '__module__', '?')}."
            f"{getattr(found, '__qualname__', found)}, not by page_images: an earlier URL "
            "pattern catches it, so every click would fail.",
            hint='Put path("page-images/", include("page_images.urls")) before catch-all '
            "patterns such as include(wagtail_urls).",
            id="page_images.E015",
        )
    ]


def _check_costs(merged: dict[str, Any]) -> list[CheckMessage]:
    """PRICES (E075) and QUOTAS (E070-E072), and a budget that cannot see a price (W070)."""
    from page_images import pricing, quotas  # here, not at import: see the module docstring

    messages: list[CheckMessage] = [
        _error(f"{SETTING_NAME}['PRICES']{problem}.", "page_images.E075")
        for problem in pricing.table_problems(merged["PRICES"] or {})
    ]
    value = merged["QUOTAS"] or {}
    shape = "such as {'per_user': {'day': 20}, 'site': {'month_usd': '200.00'}}"
    if not isinstance(value, dict):
        return [
            *messages,
            _error(
                f"{SETTING_NAME}['QUOTAS'] must be a dict {shape}, not {type(value).__name__}.",
                "page_images.E070",
            ),
        ]
    money = False
    for scope, limits in value.items():
        where = f"{SETTING_NAME}['QUOTAS'][{scope!r}]"
        if scope not in quotas.SCOPES or not isinstance(limits, dict):
            messages.append(
                _error(
                    f"{where}: QUOTAS has the keys 'per_user' and 'site', each a dict of limits, "
                    f"{shape}.",
                    "page_images.E070",
                )
            )
            continue
        for key, limit in limits.items():
            if key not in quotas.KEYS:
                messages.append(
                    _error(
                        f"{where} has an unknown limit {key!r}.",
                        "page_images.E071",
                        hint=f"Limits: {', '.join(quotas.KEYS)} (pictures, or USD with _usd).",
                    )
                )
            elif quotas.KEYS[key][1] == "images":
                if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                    messages.append(
                        _error(
                            f"{where}[{key!r}] must be a whole number of pictures ≥ 1, "
                            f"not {limit!r}.",
                            "page_images.E072",
                        )
                    )
            else:
                try:
                    amount = pricing.to_decimal(limit)
                except ValueError:
                    amount = None
                if amount is None or amount <= 0:
                    messages.append(
                        _error(
                            f"{where}[{key!r}] must be an amount of USD > 0, such as '10.00', "
                            f"not {limit!r}.",
                            "page_images.E072",
                        )
                    )
                else:
                    money = True
    if money and not messages:
        messages += _check_budget_prices(merged)
    return messages


def _check_budget_prices(merged: dict[str, Any]) -> list[CheckMessage]:
    """A budget in USD counts a picture the price table does not know as free: say so."""
    from page_images import pricing

    options = merged["OPTIONS"] if isinstance(merged["OPTIONS"], dict) else {}
    model = str(options.get("model") or "")
    asked = [(merged["SIZE"], merged["QUALITY"])]
    presets = merged["PRESETS"] if isinstance(merged["PRESETS"], dict) else {}
    for preset in presets.values():
        if isinstance(preset, dict):
            asked.append(
                (preset.get("size") or merged["SIZE"], preset.get("quality", merged["QUALITY"]))
            )
    unpriced = sorted(
        {
            f"{size} at quality {quality or 'auto'}"
            for size, quality in asked
            if pricing.price(model, str(size), quality, backend=str(merged["BACKEND"])) is None
        }
    )
    if not unpriced:
        return []
    return [
        Warning(
            f"{SETTING_NAME}['QUOTAS'] sets a budget in USD, but the price table has no price for "
            f"model {model!r} ({'; '.join(unpriced)}): those pictures count as free.",
            hint=f"Add the model to {SETTING_NAME}['PRICES'] (see docs/costs.md).",
            id="page_images.W070",
        )
    ]
