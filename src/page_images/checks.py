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

Messages and hints are translated when a check runs (``gettext``, not lazily at import), so that
``manage.py check`` speaks the active language, ``LANGUAGE_CODE`` unless a command activates
another. Values go in by name (``%(key)s``): a translation may put them in its own order.
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
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from page_images.backends import build_backend, describer_config
from page_images.conf import (
    ALT_TEXT_DEFAULTS,
    DEFAULTS,
    SETTING_NAME,
    app_settings,
    parse_ratio,
    parse_size,
)
from page_images.exceptions import (
    PageImagesConfigurationError,
    TranslatableError,
    UnsupportedAspectRatioError,
)
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
    "PACING_MAX_WAIT",
    "POLL_INTERVAL",
    "STREAM_MAX_AGE",
    "STREAMS_PER_SESSION",
)
_KNOWN_FORMATS = {"PNG", "JPEG", "WEBP"}
#: Settings that switch something on or off: a string such as "False" would read as on.
_SWITCHES = ("PROVENANCE", "AI_LABEL")


def _error(message: str, id: str, hint: str | None = None) -> Error:
    return Error(message, hint=hint, id=id)


def _said(exc: Exception) -> str:
    """An error's message in the active language: ours (a :class:`TranslatableError`) are
    translated, other errors' (Python's, a backend's) are shown as they are."""
    return exc.translated() if isinstance(exc, TranslatableError) else str(exc)


def _merged() -> dict[str, Any] | None:
    """The settings with their defaults; None when ``PAGE_IMAGES`` is not a dict (E001)."""
    raw = getattr(settings, SETTING_NAME, {})
    return {**DEFAULTS, **raw} if isinstance(raw, dict) else None


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    from page_images.events import check_events  # here, not at import: see the module docstring

    raw = getattr(settings, SETTING_NAME, {})
    if not isinstance(raw, dict):
        return [
            _error(
                _("PAGE_IMAGES must be a dict, not %(type)s.") % {"type": type(raw).__name__},
                "page_images.E001",
            )
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
    messages += _check_pacing(merged)
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
            _("%(setting)s has unknown keys: %(keys)s.")
            % {"setting": where, "keys": ", ".join(unknown)},
            check_id,
            hint=_("Known keys: %(keys)s.") % {"keys": ", ".join(sorted(known))},
        )
    ]


def check_deployment(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """What is fine on a developer's machine and wrong in production (``check --deploy``)."""
    merged = _merged() or DEFAULTS
    messages: list[CheckMessage] = []
    if merged["BACKEND"] == DEFAULTS["BACKEND"]:
        messages.append(
            Warning(
                _("PAGE_IMAGES['BACKEND'] is the LocalBackend: placeholder pictures only."),
                hint=_(
                    "Set it to 'page_images.backends.litellm.LiteLLMBackend' with a model in "
                    "OPTIONS to make real illustrations."
                ),
                id="page_images.W001",
            )
        )
    if merged["ALLOW_LOOPBACK_DOWNLOADS"]:
        messages.append(
            Warning(
                _("PAGE_IMAGES['ALLOW_LOOPBACK_DOWNLOADS'] is on."),
                hint=_("It exists for tests against a local fake provider; turn it off."),
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
                _error(_not_positive(f"{SETTING_NAME}['{key}']", value), "page_images.E005")
            )
    retries = merged["MAX_RETRIES"]
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        messages.append(
            _error(
                _("PAGE_IMAGES['MAX_RETRIES'] must be a whole number ≥ 0, not %(value)s.")
                % {"value": repr(retries)},
                "page_images.E005",
            )
        )
    if messages:
        return messages
    if merged["TASK_SOFT_TIME_LIMIT"] >= merged["TASK_TIME_LIMIT"]:
        messages.append(
            _error(
                _("PAGE_IMAGES['TASK_SOFT_TIME_LIMIT'] must be shorter than TASK_TIME_LIMIT."),
                "page_images.E006",
                hint=_("The soft limit lets the job record a readable error before the hard kill."),
            )
        )
    if merged["CLAIM_TIMEOUT"] <= merged["TASK_TIME_LIMIT"]:
        messages.append(
            _error(
                _(
                    "PAGE_IMAGES['CLAIM_TIMEOUT'] (%(claim)s) must be longer than "
                    "TASK_TIME_LIMIT (%(limit)s)."
                )
                % {"claim": merged["CLAIM_TIMEOUT"], "limit": merged["TASK_TIME_LIMIT"]},
                "page_images.E006",
                hint=_(
                    "Otherwise a job that is still running could be taken for dead and run twice."
                ),
            )
        )
    return messages


def _check_switches(merged: dict[str, Any]) -> list[CheckMessage]:
    return [
        _error(_must_be_a_switch(key, merged[key]), "page_images.E016")
        for key in _SWITCHES
        if not isinstance(merged[key], bool)
    ]


def _not_positive(setting: str, value: Any) -> str:
    """The one sentence of E005 and E080 for a number that must be above zero."""
    return _("%(setting)s must be a positive number, not %(value)s.") % {
        "setting": setting,
        "value": repr(value),
    }


def _must_be_a_switch(key: str, value: Any) -> str:
    """The one sentence of E016 and E066: a setting that switches something on or off."""
    return _("PAGE_IMAGES['%(key)s'] must be True or False, not %(value)s.") % {
        "key": key,
        "value": repr(value),
    }


def _check_size(size: Any) -> list[CheckMessage]:
    try:
        parse_size(size)
    except ValueError as exc:
        message = _("PAGE_IMAGES['SIZE']: %(problem)s.") % {"problem": _said(exc)}
        return [_error(message, "page_images.E004")]
    return []


def _check_formats(formats: Any) -> list[CheckMessage]:
    if isinstance(formats, str) or not isinstance(formats, Iterable):
        given = set()
    else:
        given = {str(f).upper() for f in formats}
    if not given or not given <= _KNOWN_FORMATS:
        return [
            _error(
                _(
                    "PAGE_IMAGES['ALLOWED_FORMATS'] must be a list drawn from %(known)s, not "
                    "%(value)s."
                )
                % {"known": ", ".join(sorted(_KNOWN_FORMATS)), "value": repr(formats)},
                "page_images.E007",
            )
        ]
    return []


def _check_dotted_path(key: str, path: Any, check_id: str) -> list[CheckMessage]:
    try:
        target = import_string(str(path))
    except ImportError as exc:
        return [
            _error(
                _("PAGE_IMAGES['%(key)s'] = %(path)s could not be imported: %(problem)s")
                % {"key": key, "path": repr(path), "problem": exc},
                check_id,
            )
        ]
    if not callable(target):
        return [
            _error(
                _("PAGE_IMAGES['%(key)s'] = %(path)s is not callable.")
                % {"key": key, "path": repr(path)},
                check_id,
            )
        ]
    return []


def _check_rate(rate: Any) -> list[CheckMessage]:
    from page_images.ratelimit import parse_rate

    if rate is None:
        return []
    try:
        parse_rate(str(rate))
    except ValueError as exc:
        return [
            _error(
                _("PAGE_IMAGES['RATE_LIMIT']: %(problem)s.") % {"problem": _said(exc)},
                "page_images.E014",
            )
        ]
    return []


def _check_backend(path: Any, options: Any) -> list[CheckMessage]:
    if not isinstance(options, dict):
        return [
            _error(
                _("PAGE_IMAGES['OPTIONS'] must be a dict, not %(type)s.")
                % {"type": type(options).__name__},
                "page_images.E008",
            )
        ]
    try:
        backend = build_backend(str(path), options)
    except PageImagesConfigurationError as exc:
        check_id = "page_images.E008" if "OPTIONS" in str(exc) else "page_images.E003"
        return [_error(exc.translated(), check_id)]
    return backend.check()


# --- The editor's tools (E060-E067) ----------------------------------------------------------

_FLAGS = ("PROMPT_PANEL", "REVIEW", "REGENERATE")
_PRESET_KEYS = {"label", "prompt", "size", "quality"}
#: The longest preset name, aspect ratio and quality the history's columns hold.
_PRESET_NAME_MAX = 64
_RATIO_MAX = 16
_QUALITY_MAX = 16
_VARIANTS_MAX = 10
#: OpenAI's ``partial_images`` is 0-3, the only provider that streams them yet.
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
                _("PAGE_IMAGES['MAX_PROMPT_LENGTH'] must be a whole number ≥ 1, not %(value)s.")
                % {"value": repr(length)},
                "page_images.E065",
            )
        )
    messages += _check_presets(merged["PRESETS"])
    messages += _check_ratios(merged)
    for key, low, high, check_id, hint in (
        (
            "VARIANTS",
            1,
            _VARIANTS_MAX,
            "page_images.E063",
            _("Providers make at most 10 pictures per call (OpenAI's n)."),
        ),
        (
            "PREVIEWS",
            0,
            _PREVIEWS_MAX,
            "page_images.E067",
            _("Providers send at most 3 previews of a picture (OpenAI's partial_images)."),
        ),
    ):
        value = merged[key]
        if not _whole(value) or not low <= value <= high:
            messages.append(
                _error(
                    _(
                        "PAGE_IMAGES['%(key)s'] must be a whole number from %(low)s to %(high)s, "
                        "not %(value)s."
                    )
                    % {"key": key, "low": low, "high": high, "value": repr(value)},
                    check_id,
                    hint=hint,
                )
            )
    keep = merged["KEEP_PICTURES"]
    if keep is not None and (not _whole(keep) or keep < 0):
        messages.append(
            _error(
                _(
                    "PAGE_IMAGES['KEEP_PICTURES'] must be None (keep every file) or a whole "
                    "number ≥ 0, not %(value)s."
                )
                % {"value": repr(keep)},
                "page_images.E064",
            )
        )
    for key in _FLAGS:
        if not isinstance(merged[key], bool):
            messages.append(_error(_must_be_a_switch(key, merged[key]), "page_images.E066"))
    return messages


def _check_template(template: Any) -> list[CheckMessage]:
    """E060: a format string whose fields every model using the mixin has ({prompt} is its own)."""
    if template is None:
        return []
    if not isinstance(template, str):
        # Translators: said of PAGE_IMAGES['PROMPT_TEMPLATE'], which comes first.
        problem = _("must be a string or None, not %(type)s") % {"type": type(template).__name__}
    else:
        try:
            names = {
                # (No ``_`` for the parts left unused: ``_`` is gettext in this module.)
                field
                for _text, field, _spec, _conversion in string.Formatter().parse(template)
                if field is not None
            }
        except ValueError as exc:
            # Translators: said of PAGE_IMAGES['PROMPT_TEMPLATE'], which comes first.
            names, problem = set(), _("is not a format string: %(problem)s") % {"problem": exc}
        else:
            # "{story.title}", "{tags[0]}": the record's own attribute is the first part.
            roots = {name.split(".", 1)[0].split("[", 1)[0] for name in names}
            problem = _template_fields_problem(roots)
    if not problem:
        return []
    return [
        _error(
            _("PAGE_IMAGES['PROMPT_TEMPLATE'] %(problem)s.") % {"problem": problem},
            "page_images.E060",
            hint=_(
                "For example 'Watercolour illustration of: {prompt}' ({prompt} is the record's "
                "own prompt) or a field every model using the mixin has, '{title}'."
            ),
        )
    ]


def _template_fields_problem(roots: set[str]) -> str:
    if "" in roots or any(root.isdigit() for root in roots):
        # Translators: said of PAGE_IMAGES['PROMPT_TEMPLATE'], which comes first.
        return _("has a positional field ({} or {0}): name the record's field")
    for model in image_generating_models():
        missing = sorted(root for root in roots - {"prompt"} if not hasattr(model, root))
        if missing:
            # Translators: said of PAGE_IMAGES['PROMPT_TEMPLATE'], which comes first.
            return _("names %(fields)s, which %(model)s does not have") % {
                "fields": ", ".join(missing),
                "model": model._meta.label,
            }
    return ""


def _check_presets(presets: Any) -> list[CheckMessage]:
    """E061: ``{"name": {"label", "prompt", "size", "quality"}}``."""
    if not isinstance(presets, dict):
        return [
            _error(
                _("PAGE_IMAGES['PRESETS'] must be a dict of name to preset, not %(type)s.")
                % {"type": type(presets).__name__},
                "page_images.E061",
            )
        ]
    messages: list[CheckMessage] = []
    for name, preset in presets.items():
        problem = _preset_problem(name, preset)
        if problem:
            messages.append(
                _error(
                    _("PAGE_IMAGES['PRESETS'][%(name)s] %(problem)s.")
                    % {"name": repr(name), "problem": problem},
                    "page_images.E061",
                    hint=_(
                        "A preset is {'label': ..., 'prompt': words added to the prompt (may "
                        "place it with {prompt}), 'size': 'WIDTHxHEIGHT', 'quality': ...}."
                    ),
                )
            )
    return messages


def _preset_problem(name: Any, preset: Any) -> str:
    """What is wrong with one preset: said after ``PAGE_IMAGES['PRESETS'][name]``."""
    if not isinstance(name, str) or not name or len(name) > _PRESET_NAME_MAX:
        # Translators: this and the next ones follow PAGE_IMAGES['PRESETS']['<name>'].
        return _("needs a name of 1 to %(max)s characters") % {"max": _PRESET_NAME_MAX}
    if not isinstance(preset, dict):
        return _("must be a dict, not %(type)s") % {"type": type(preset).__name__}
    unknown = sorted(set(map(str, preset)) - _PRESET_KEYS)
    if unknown:
        return _("has unknown keys: %(keys)s") % {"keys": ", ".join(unknown)}
    for key in ("label", "prompt"):
        value = preset.get(key, "")
        # A label may be gettext_lazy("Watercolour"): each editor reads it in their language.
        if not isinstance(value, str) and not (key == "label" and isinstance(value, Promise)):
            return _("'%(key)s' must be a string") % {"key": key}
    quality = preset.get("quality")
    if quality is not None and (not isinstance(quality, str) or len(quality) > _QUALITY_MAX):
        return _("'quality' must be None or a string of at most %(max)s characters") % {
            "max": _QUALITY_MAX
        }
    if preset.get("size") is not None:
        try:
            parse_size(preset["size"])
        except ValueError as exc:
            return _("'size': %(problem)s") % {"problem": _said(exc)}
    return ""


def _check_ratios(merged: dict[str, Any]) -> list[CheckMessage]:
    """E062: "W:H" ratios the configured backend can draw (OpenAI's models take a fixed list)."""
    ratios = merged["ASPECT_RATIOS"]
    if isinstance(ratios, str) or not isinstance(ratios, Iterable):
        return [
            _error(
                _(
                    "PAGE_IMAGES['ASPECT_RATIOS'] must be a list such as ['1:1', '3:2'], not "
                    "%(value)s."
                )
                % {"value": repr(ratios)},
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
                raise ValueError(
                    _("%(ratio)s is longer than %(max)s characters")
                    % {"ratio": repr(ratio), "max": _RATIO_MAX}
                )
            if backend is not None:
                backend.size_for(str(ratio), size)
        except (ValueError, UnsupportedAspectRatioError) as exc:
            messages.append(
                _error(
                    _("PAGE_IMAGES['ASPECT_RATIOS']: %(problem)s") % {"problem": _said(exc)},
                    "page_images.E062",
                )
            )
    return messages


def _check_alt_text(config: Any) -> list[CheckMessage]:
    """``ALT_TEXT``: None, or a dict of known keys whose describer can be built (E080)."""
    key = f"{SETTING_NAME}['ALT_TEXT']"
    if config is None:
        return []
    if not isinstance(config, dict):
        return [
            _error(
                _("PAGE_IMAGES['ALT_TEXT'] must be None or a dict, not %(type)s.")
                % {"type": type(config).__name__},
                "page_images.E080",
            )
        ]
    messages: list[CheckMessage] = []
    messages += _check_keys(key, config, ALT_TEXT_DEFAULTS, "page_images.E080")
    merged = {**ALT_TEXT_DEFAULTS, **config}
    for number in ("MAX_LENGTH", "TIMEOUT"):
        value = merged[number]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            messages.append(_error(_not_positive(f"{key}['{number}']", value), "page_images.E080"))
    if not isinstance(merged["PROMPT"], str) or not merged["PROMPT"].strip():
        messages.append(
            _error(
                _("PAGE_IMAGES['ALT_TEXT']['PROMPT'] must be a non-empty string."),
                "page_images.E080",
            )
        )
    if not isinstance(merged["OPTIONS"], dict):
        messages.append(
            _error(_("PAGE_IMAGES['ALT_TEXT']['OPTIONS'] must be a dict."), "page_images.E080")
        )
    if messages:
        return messages
    try:
        build_backend(*describer_config(merged), where=key)
    except PageImagesConfigurationError as exc:
        return [_error(exc.translated(), "page_images.E080")]
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
                _(
                    "PAGE_IMAGES['ALT_TEXT'] is set, but no model names an image_alt_text_field: "
                    "no alt text will be written."
                ),
                hint=_("Add a text field for the alt text and name it in image_alt_text_field."),
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
                _("image_field_name = %(name)s is not an ImageField or FileField of %(model)s.")
                % {"name": repr(model.image_field_name), "model": model._meta.label},
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
                    _("image_prompt_field = %(name)s is not a field of %(model)s.")
                    % {"name": repr(model.image_prompt_field), "model": model._meta.label},
                    obj=model,
                    id="page_images.E012",
                )
            )
    elif not overrides_prompt:
        messages.append(
            Error(
                _("%(model)s does not say where its image prompt comes from.")
                % {"model": model._meta.label},
                hint=_("Set image_prompt_field = '<field name>' or override get_image_prompt()."),
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
            _("image_alt_text_field = %(name)s is not a CharField or TextField of %(model)s.")
            % {"name": repr(name), "model": model._meta.label},
            hint=_(
                "Add a text field for the alt text (blank=True), or set image_alt_text_field "
                "to None."
            ),
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
            _(
                "Celery's Redis broker has no %(options)s: a broker that stops answering "
                "would hold a click's request forever."
            )
            % {"options": (" " + pgettext("between two option names", "or") + " ").join(missing)},
            hint=_(
                "Set broker_transport_options = {'socket_timeout': 5, "
                "'socket_connect_timeout': 5} (CELERY_BROKER_TRANSPORT_OPTIONS in Django settings "
                "with the CELERY namespace)."
            ),
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
    if _celery_runs_the_jobs():
        message = _(
            "PAGE_IMAGES['EVENTS'] is %(bus)s, which does not reach a Celery worker in another "
            "process: a page waits for its picture until it is reloaded."
        )
    else:
        message = _(
            "PAGE_IMAGES['EVENTS'] is %(bus)s, which does not reach a task worker in another "
            "process: a page waits for its picture until it is reloaded."
        )
    return [
        Warning(
            message % {"bus": config["BACKEND"]},
            hint=_(
                "Use page_images.events.redis.RedisBus (with Redis) or "
                "page_images.events.files.FileBus (one machine), or set EVENTS to None so that "
                "pages poll."
            ),
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
                _(
                    "page_images.urls is not included in the URLconf: the chips have nowhere to "
                    "post."
                ),
                hint=_('Add path("page-images/", include("page_images.urls")) to urlpatterns.'),
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
            _(
                "%(path)s is answered by %(view)s, not by page_images: an earlier URL pattern "
                "catches it, so every click would fail."
            )
            % {
                "path": path,
                "view": f"{getattr(found, '__module__', '?')}."
                f"{getattr(found, '__qualname__', found)}",
            },
            hint=_(
                'Put path("page-images/", include("page_images.urls")) before catch-all '
                "patterns such as include(wagtail_urls)."
            ),
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
    shape = "{'per_user': {'day': 20}, 'site': {'month_usd': '200.00'}}"
    if not isinstance(value, dict):
        return [
            *messages,
            _error(
                _("PAGE_IMAGES['QUOTAS'] must be a dict such as %(shape)s, not %(type)s.")
                % {"shape": shape, "type": type(value).__name__},
                "page_images.E070",
            ),
        ]
    money = False
    for scope, limits in value.items():
        where = f"{SETTING_NAME}['QUOTAS'][{scope!r}]"
        if scope not in quotas.SCOPES or not isinstance(limits, dict):
            messages.append(
                _error(
                    _(
                        "%(setting)s: QUOTAS has the keys 'per_user' and 'site', each a dict of "
                        "limits, such as %(shape)s."
                    )
                    % {"setting": where, "shape": shape},
                    "page_images.E070",
                )
            )
            continue
        for key, limit in limits.items():
            if key not in quotas.KEYS:
                messages.append(
                    _error(
                        _("%(setting)s has an unknown limit %(key)s.")
                        % {"setting": where, "key": repr(key)},
                        "page_images.E071",
                        hint=_("Limits: %(keys)s (pictures, or USD with _usd).")
                        % {"keys": ", ".join(quotas.KEYS)},
                    )
                )
            elif quotas.KEYS[key][1] == "images":
                if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                    messages.append(
                        _error(
                            _("%(setting)s must be a whole number of pictures ≥ 1, not %(value)s.")
                            % {"setting": f"{where}[{key!r}]", "value": repr(limit)},
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
                            _(
                                "%(setting)s must be an amount of USD > 0, such as '10.00', "
                                "not %(value)s."
                            )
                            % {"setting": f"{where}[{key!r}]", "value": repr(limit)},
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
            _("%(size)s at quality %(quality)s") % {"size": size, "quality": quality or "auto"}
            for size, quality in asked
            if pricing.price(model, str(size), quality, backend=str(merged["BACKEND"])) is None
        }
    )
    if not unpriced:
        return []
    return [
        Warning(
            _(
                "PAGE_IMAGES['QUOTAS'] sets a budget in USD, but the price table has no price "
                "for model %(model)s (%(sizes)s): those pictures count as free."
            )
            % {"model": repr(model), "sizes": "; ".join(unpriced)},
            hint=_("Add the model to PAGE_IMAGES['PRICES'] (see docs/costs.md)."),
            id="page_images.W070",
        )
    ]


_LIMIT_SHAPE = "{'openai/gpt-image-1': {'requests_per_minute': 50, 'images_per_minute': 50}}"
_REDIS_URL_SCHEMES = ("redis", "rediss", "unix")


def _check_pacing(merged: dict[str, Any]) -> list[CheckMessage]:
    """RATE_LIMITS (E100), and the Redis that shares its budgets between workers (E101)."""
    from page_images import pacing  # here, not at import: see the module docstring

    value = merged["RATE_LIMITS"] or {}
    where = f"{SETTING_NAME}['RATE_LIMITS']"
    if not isinstance(value, dict):
        return [
            _error(
                _("%(setting)s must be a dict of models such as %(shape)s, not %(type)s.")
                % {"setting": where, "shape": _LIMIT_SHAPE, "type": type(value).__name__},
                "page_images.E100",
            )
        ]
    messages: list[CheckMessage] = []
    for model, entry in value.items():
        place = f"{where}[{model!r}]"
        if not isinstance(entry, dict) or not entry:
            messages.append(
                _error(
                    _("%(setting)s must be a dict of limits such as %(shape)s.")
                    % {"setting": place, "shape": "{'requests_per_minute': 50}"},
                    "page_images.E100",
                )
            )
            continue
        known = dict.fromkeys(pacing.LIMIT_KEYS)
        messages += _check_keys(place, entry, known, "page_images.E100")
        for key in pacing.LIMIT_KEYS[:2]:
            number = entry.get(key)
            if number is not None and (
                isinstance(number, bool) or not isinstance(number, int) or number < 1
            ):
                messages.append(
                    _error(
                        _("%(setting)s must be a whole number ≥ 1, not %(value)s.")
                        % {"setting": f"{place}[{key!r}]", "value": repr(number)},
                        "page_images.E100",
                    )
                )
        window = entry.get("window", pacing.MINUTE)
        if isinstance(window, bool) or not isinstance(window, (int, float)) or window <= 0:
            messages.append(_error(_not_positive(f"{place}['window']", window), "page_images.E100"))
    url = merged["PACING_REDIS_URL"]
    if url is not None and (
        not isinstance(url, str) or url.split("://", 1)[0].lower() not in _REDIS_URL_SCHEMES
    ):
        messages.append(
            _error(
                _("PAGE_IMAGES['PACING_REDIS_URL'] must be a Redis URL, not %(value)s.")
                % {"value": repr(url)},
                "page_images.E101",
                hint=_("Use redis://host:port/db, rediss://… or unix://…"),
            )
        )
    elif value and not messages and pacing.redis_url() is None:
        messages.append(
            _error(
                _(
                    "PAGE_IMAGES['RATE_LIMITS'] paces models, but there is no Redis to share "
                    "their budget between the workers."
                ),
                "page_images.E101",
                hint=_(
                    "Set PAGE_IMAGES['PACING_REDIS_URL'], or use Redis for the event bus "
                    "(EVENTS) or for Celery's broker."
                ),
            )
        )
    return messages
