"""What a container shows for one record: the context shared by the template tags and the views.

The trigger view, the fragment view and the tags must render the same markup for the same state, or
a reload would show something other than the live update did; so all three build it here.

A page may show hundreds of containers, so the work is split by how often it changes. What every
container of a page shares (two URLs, two labels, the page's own path, the signer with its key
already derived) is worked out once per request. The labels are lazy, translated when a chip shows
them; the URLs are reversed again for another language only if the URLconf puts the language into
URLs, because asking which language is active costs as much as the rest of a record's values.
Values that can never need HTML-escaping (the state, the DOM key, a signed reference whose key is a
number or a slug, URLs without special characters) are marked safe, so the template does not escape
them again and the tags output them as they are (see ``templatetags/page_images.py``); anything
else, a text key included, is left to the template's escaping. The permission check runs only if
the template asks for it (a container showing a picture never does). Measured on 200 containers
(docs/benchmarks.md, target 4), a page of them went from 3.1 to about 1.8 times the cost of as many
plain ``<img>`` tags.

What only a generating container shows (the box its picture will fill, the seconds it has waited)
costs nothing to the others; the box's size is parsed once per page, and asked of the job's
history row (one query per generating container) only where the panel's shapes or a preset's size
can make it differ from SIZE, or where a running job may have sent a preview (PREVIEWS), which the
same query reads. A picture's own width and
height come from the image field's ``width_field``/``height_field`` when the model has them, which
are columns already read: the file itself is never opened to render a page.
"""

from __future__ import annotations

import html
import math
import re
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote, urlsplit
from weakref import WeakKeyDictionary

from django.core.exceptions import ImproperlyConfigured
from django.urls import (
    LocalePrefixPattern,
    NoReverseMatch,
    URLResolver,
    get_resolver,
    get_urlconf,
    reverse,
)
from django.utils import timezone
from django.utils.functional import Promise, SimpleLazyObject
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString
from django.utils.translation import get_language, gettext_lazy

from page_images import editing, estimates, quotas
from page_images.conf import app_settings, parse_size
from page_images.events import get_bus
from page_images.history import Generation
from page_images.permissions import can_generate
from page_images.references import event_key
from page_images.signer import RecordSigner
from page_images.specs import reviewing

if TYPE_CHECKING:
    from datetime import datetime

    from django.http import HttpRequest

    from page_images.models import ImageGeneratingMixin

REFERENCES_ATTRIBUTE = "_page_images_references"
PAGE_ATTRIBUTE = "_page_images_page"
_STATES = {
    state: SafeString(state)
    for state in ("generating", "review", "ready", "error", "empty", "compose", "earlier")
}
#: The chip's sparkle is an inline SVG in chip_form.html: an emoji needs a font that has it.
_CHIP_LABEL = gettext_lazy("Generate image")
_RETRY_LABEL = gettext_lazy("Try again")
_CANCEL_LABEL = gettext_lazy("Cancel")
_PANELS = ("compose", "earlier")
#: A signed reference of this shape (any integer or slug key) needs no HTML-escaping, only ':'
#: needs URL-quoting, and its DOM key only has '.' and ':' to replace.
_PLAIN_SIGNED = re.compile(r"[A-Za-z0-9_.:-]*")


def remember(request: HttpRequest | None, reference: str) -> None:
    """Note a reference rendered on this page, for the one event stream the page opens."""
    if request is None:
        return
    # A dict as an ordered set: a page of hundreds of records must not cost a scan per record.
    seen: dict[str, None] = request.__dict__.setdefault(REFERENCES_ATTRIBUTE, {})
    seen[reference] = None


def rendered_references(request: HttpRequest | None) -> list[str]:
    if request is None:
        return []
    return list(request.__dict__.get(REFERENCES_ATTRIBUTE, {}))


def streaming_enabled(request: HttpRequest | None = None) -> bool:
    """Whether this page gets an event stream: a bus is configured and the server is ASGI.

    Under WSGI the stream view answers 404 (it would hold a thread forever), so pages served by
    WSGI poll instead, whatever EVENTS says.
    """
    from django.core.handlers.asgi import ASGIRequest

    if get_bus() is None:
        return False
    return request is None or isinstance(request, ASGIRequest)


def trigger_url() -> str:
    """Where a click goes: the URL named by TRIGGER_URL (the app's view, or the ninja router's)."""
    name = app_settings.TRIGGER_URL
    try:
        return reverse(name)
    except NoReverseMatch as exc:
        raise ImproperlyConfigured(
            f'PAGE_IMAGES["TRIGGER_URL"] is {name!r}, which names no URL of this site: give the '
            'name of the trigger view ("page_images:trigger") or of the ninja router\'s operation '
            '("<your api\'s urls_namespace>:page_images_generate").'
        ) from exc


def visitor_state(instance: ImageGeneratingMixin, state: str) -> str:
    """``state`` as someone who may not generate sees it: a job's progress and errors are for
    its editors only; anyone else sees the picture, or nothing, as a static page would show."""
    if state == "ready":
        return state
    return "ready" if instance.image_file else "empty"


def _seconds_until(moment: datetime, now: datetime) -> int:
    """Whole seconds from now until just past ``moment``, for a one-off re-read of a container."""
    return max(1, math.ceil((moment - now).total_seconds()) + 1)


def _number(value: int) -> SafeString:
    """An integer as plain digits: ``{{ 1536 }}`` would come out as "1,536" where a project sets
    USE_THOUSAND_SEPARATOR, which no attribute that a browser or script reads would accept."""
    return SafeString(int(value))


def _box_size(size: str) -> tuple[SafeString, SafeString] | None:
    """The picture's expected size, for the box a generating container reserves.

    None when ``size`` cannot be read (a bad SIZE is reported by the system checks): the page
    still renders, unboxed.
    """
    try:
        width, height = parse_size(size)
    except ValueError:
        return None
    return _number(width), _number(height)


def _sizes_vary() -> bool:
    """Whether a job may ask for another size than SIZE: the panel's shapes, a preset's size."""
    return bool(app_settings.ASPECT_RATIOS) or any(
        spec.get("size") for spec in app_settings.PRESETS.values()
    )


def _usual_wait(page: dict[str, Any], box: tuple[SafeString, SafeString] | None) -> str:
    """How long such a job usually takes, asked once per page for each size."""
    size = f"{box[0]}x{box[1]}" if box else app_settings.SIZE
    waits: dict[str, str] = page.setdefault("usual_waits", {})
    if size not in waits:
        found = estimates.typical_wait(app_settings.BACKEND, size)
        waits[size] = estimates.wait_text(*found) if found else ""
    return waits[size]


def _running_job(
    instance: ImageGeneratingMixin, page: dict[str, Any]
) -> tuple[tuple[SafeString, SafeString] | None, str]:
    """The box of the running job's picture and the address of its latest preview ("" for none).

    Both from the job's history row, one query by its token, asked only where the size may differ
    from SIZE (the panel's shapes, a preset's size) or a preview may be there (PREVIEWS, and the
    job has started): a page of pictures, or of queued jobs, asks nothing.
    """
    box = page["box"]
    token = instance.image_claim_token
    previews = page["previews"] and instance.image_started_at is not None
    if token is None or not (page["sizes_vary"] or previews):
        return box, ""
    row = Generation.objects.filter(token=token).values_list("size", "preview").first()
    if row is None:
        return box, ""
    size, preview = row
    if page["sizes_vary"] and size:
        box = _box_size(size) or box
    return box, instance.image_file.storage.url(preview) if previews and preview else ""


#: Per model: the image field's (width_field, height_field) names, or None without both. A plain
#: dict (models live as long as the process): a weak one costs two weak references per lookup,
#: and this is asked once per picture of a page.
_DIMENSION_FIELDS: dict[type, tuple[str, str] | None] = {}


def _dimensions(instance: ImageGeneratingMixin) -> tuple[Any, Any]:
    """The stored picture's width and height, if the model keeps them; else (None, None).

    Only columns already loaded with the record are read: measuring the file would open it, once
    per container of every page.
    """
    model = type(instance)
    if model not in _DIMENSION_FIELDS:
        field = model._meta.get_field(instance.image_field_name)
        width, height = getattr(field, "width_field", None), getattr(field, "height_field", None)
        _DIMENSION_FIELDS[model] = (width, height) if width and height else None
    names = _DIMENSION_FIELDS[model]
    if names is not None:
        width, height = getattr(instance, names[0]), getattr(instance, names[1])
        if width and height:  # both or neither: a lone one would draw the picture out of shape
            return _number(width), _number(height)
    return None, None


def _safe_if_plain(text: str) -> str:
    """``text`` marked safe when escaping would not change it; otherwise left to the template."""
    return SafeString(text) if html.escape(text) == text else text


class _Permission:
    """``can_generate(user, instance)``, asked only when a template tests it, then remembered.

    Truthy or falsy like the bool it stands for, so ``{% if can_generate %}`` and Python's ``if``
    both work; a container that shows a picture never tests it, and so costs no permission query.
    """

    __slots__ = ("_instance", "_user", "_value")

    def __init__(self, user: Any, instance: ImageGeneratingMixin) -> None:
        self._user = user
        self._instance = instance
        self._value: bool | None = None

    def __bool__(self) -> bool:
        if self._value is None:
            self._value = can_generate(self._user, self._instance)
        return self._value

    def __eq__(self, other: object) -> bool:
        return bool(self) == other

    def __hash__(self) -> int:
        return hash(bool(self))

    def __str__(self) -> str:
        return str(bool(self))

    def __repr__(self) -> str:
        return repr(bool(self))


def _page_path(request: HttpRequest) -> str:
    """Where a chip's bare form (no script yet, or not bound yet) sends the editor back to.

    A container htmx fetched is drawn by the fragment view, whose own URL is a bare fragment: the
    page the editor is on is the one htmx names (HX-Current-URL), when it is on this site.
    """
    current = request.headers.get("HX-Current-URL", "") if request.headers.get("HX-Request") else ""
    if current and url_has_allowed_host_and_scheme(
        current, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        parts = urlsplit(current)
        return f"{parts.path or '/'}?{parts.query}" if parts.query else parts.path or "/"
    return request.get_full_path()


def _page_context(request: HttpRequest | None) -> dict[str, Any]:
    """What every container of a page shares, worked out once per request.

    The labels are lazy, so each is translated when (and into the language in which) a chip shows
    it. The URLs are reversed again when the language changes only if the URLconf puts the
    language into URLs at all: asking for the active language costs as much as the rest of a
    container's values together.
    """
    page: dict[str, Any] | None = None
    if request is not None:
        page = request.__dict__.get(PAGE_ATTRIBUTE)
    if page is None or (page["language"] is not None and page["language"] != get_language()):
        page = {
            "language": get_language() if _urls_follow_language() else None,
            "trigger_url": _safe_if_plain(trigger_url()),
            "fragment_url": _safe_if_plain(reverse("page_images:fragment")),
            "cancel_url": _safe_if_plain(reverse("page_images:cancel")),
            "panel_url": _safe_if_plain(reverse("page_images:panel")),
            "accept_url": _safe_if_plain(reverse("page_images:accept")),
            "discard_url": _safe_if_plain(reverse("page_images:discard")),
            "restore_url": _safe_if_plain(reverse("page_images:restore")),
            "prompt_panel": app_settings.PROMPT_PANEL,
            "regenerate": app_settings.REGENERATE or reviewing(),
            "next": _page_path(request) if request is not None else "",
            "chip_label": _CHIP_LABEL,
            "retry_label": _RETRY_LABEL,
            "cancel_label": _CANCEL_LABEL,
            "ai_label": app_settings.AI_LABEL,
            "signer": RecordSigner(),
            "box": _box_size(app_settings.SIZE),
            # Only then is a generating container's box asked of its job's history row.
            "sizes_vary": _sizes_vary(),
            # Only then is a running job's latest preview.
            "previews": app_settings.PREVIEWS > 0,
        }
        if request is not None:
            request.__dict__[PAGE_ATTRIBUTE] = page
    return page


#: Per URLconf (its resolver): whether reverse() can answer differently in another language.
_FOLLOWS_LANGUAGE: WeakKeyDictionary[URLResolver, bool] = WeakKeyDictionary()


def _urls_follow_language() -> bool:
    """Whether the current URLconf uses i18n_patterns() or a translated (lazy) route anywhere.

    Those are the two ways Django puts the language into URLs; the resolver itself tests a route
    the same way (a plain ``str`` is compiled once for every language).
    """
    resolver = get_resolver(get_urlconf())
    follows = _FOLLOWS_LANGUAGE.get(resolver)
    if follows is None:
        follows = _FOLLOWS_LANGUAGE[resolver] = _patterns_follow_language(resolver.url_patterns)
    return follows


def _patterns_follow_language(patterns: Any) -> bool:
    for entry in patterns:
        pattern = entry.pattern
        if isinstance(pattern, LocalePrefixPattern) or any(
            isinstance(value, Promise) for value in vars(pattern).values()
        ):
            return True
        if isinstance(entry, URLResolver) and _patterns_follow_language(entry.url_patterns):
            return True
    return False


def _record_context(
    request: HttpRequest | None,
    instance: ImageGeneratingMixin,
    user: Any,
    target: str,
    page: dict[str, Any],
) -> tuple[dict[str, Any], str, bool]:
    """What a chip shows for ``instance``; its reference; whether the signed one is plain."""
    reference = instance.image_reference
    signed = page["signer"].sign(reference)
    plain = _PLAIN_SIGNED.fullmatch(signed) is not None
    context = {
        "instance": instance,
        "signed": SafeString(signed) if plain else _safe_if_plain(signed),
        "trigger_url": page["trigger_url"],
        "next": page["next"],
        "target": target,
        "can_generate": _Permission(
            user if user is not None else getattr(request, "user", None), instance
        ),
        "chip_label": page["chip_label"],
        "retry_label": page["retry_label"],
        "prompt_panel": page["prompt_panel"],
        "panel_url": page["panel_url"],
    }
    return context, reference, plain


def chip_context(
    request: HttpRequest | None,
    instance: ImageGeneratingMixin,
    *,
    user: Any = None,
    target: str,
    page: dict[str, Any] | None = None,
) -> dict[str, Any]:
    page = page if page is not None else _page_context(request)
    return _record_context(request, instance, user, target, page)[0]


def container_context(
    request: HttpRequest | None,
    instance: ImageGeneratingMixin,
    *,
    message: str = "",
    user: Any = None,
    panel: str = "",
    prompt: str | None = None,
) -> dict[str, Any]:
    """What a container shows; ``panel`` ("compose" or "earlier") opens one of the editor's
    panels instead of the record's state (the panel view's answer), ``prompt`` is the text it
    shows when the editor's own was refused."""
    page = _page_context(request)
    context, reference, plain = _record_context(
        request, instance, user, "closest .page-images", page
    )
    state = instance.image_state
    # Only those who may generate see a job's progress or its errors, and only their pages follow
    # the record: anyone else sees the picture, or the site's fallback, as a static page would.
    # A picture looks the same to everyone, so it costs no permission check and no subscription,
    # unless the site offers "Regenerate" on pictures (then an editor's picture is followed).
    follow = False
    if state != "ready" or page["regenerate"]:
        if context["can_generate"]:
            remember(request, reference)
            follow = True
        else:
            state = visitor_state(instance, state)
    if panel in _PANELS and follow:
        context.update(editing.panel_context(instance, panel, prompt))
        state = panel
    signed = context["signed"]
    if plain:  # what event_key() and quote() make of it
        key, query = reference.replace(".", "-").replace(":", "-"), signed.replace(":", "%3A")
    else:
        key, query = event_key(reference), quote(signed)
    # The fragment URL with this record's reference: once quoted, nothing in it to escape.
    fragment_url = page["fragment_url"]
    refresh_url = f"{fragment_url}?ref={query}"
    generating = state == "generating"
    poll = generating and not streaming_enabled(request)
    box = since = elapsed = deadline = image_width = image_height = None
    usual = preview_url = ""
    if generating:
        now = timezone.now()
        deadline = _seconds_until(cast("datetime", instance.image_job_deadline), now)
        box, preview_url = _running_job(instance, page)
        # Set: a job shows as generating only while it has a deadline, counted from one of them.
        waiting_since = cast("datetime", instance.image_started_at or instance.image_claimed_at)
        # The seconds already waited, which the script counts on from (its own clock may differ
        # from the server's), and the moment itself, for machines, in ISO 8601.
        since = waiting_since.isoformat(timespec="seconds")
        elapsed = _number(max(0, int((now - waiting_since).total_seconds())))
        usual = _usual_wait(page, box)
    elif state == "ready":
        image_width, image_height = _dimensions(instance)
    context.update(
        {
            "state": _STATES.get(state, state),
            "reference": _safe_if_plain(reference),
            # The page's stream follows this record (read by the script when the stream tag came
            # before the containers and the page's token has to be asked for).
            "follow": follow,
            # event_key keeps letters, digits, '_' and '-' only.
            "key": SafeString(key),
            "fragment_url": fragment_url,
            "refresh_url": SafeString(refresh_url)
            if isinstance(fragment_url, SafeString)
            else refresh_url,
            "image_url": instance.image_file.url if state == "ready" else "",
            "image_width": image_width,
            "image_height": image_height,
            "alt": instance.get_image_alt_text(),
            # A picture's editors (REGENERATE) also read why their last Regenerate failed.
            "error": instance.image_error_message
            if state == "error" or (state == "ready" and follow)
            else "",
            "message": message,
            "claimed_at": instance.image_claimed_at,
            "started_at": instance.image_started_at,
            "waiting_since": since,
            "elapsed": elapsed,
            # "usually 20–40 s", from the history's finished jobs of this backend and size.
            "usual_wait": usual,
            # The running job's latest rough version of the picture (PREVIEWS), shown blurred.
            "preview_url": preview_url,
            # The picture's expected width and height: the box a generating container reserves,
            # so that the page does not move when the picture lands.
            "box_width": box[0] if box else None,
            "box_height": box[1] if box else None,
            "poll_ms": int(app_settings.POLL_INTERVAL * 1000) if poll else None,
            # Re-read when the job would be presumed dead: a dead job sends no event. A record
            # shows as generating only while its job has a deadline to pass (image_state).
            "refresh_in": deadline,
            "cancel_url": page["cancel_url"],
            "cancel_label": page["cancel_label"],
            "regenerate": page["regenerate"] and follow,
            "accept_url": page["accept_url"],
            "discard_url": page["discard_url"],
            "restore_url": page["restore_url"],
            "candidates": editing.candidates(instance) if state == "review" else (),
            "ai_label": page["ai_label"],  # shown with a picture only, to visitors as well
            # Shown beside the chip once a quota runs low, and always in the prompt panel (QUOTAS
            # set; counted on first use).
            "quota": SimpleLazyObject(
                lambda: quotas.display_status(
                    request, user if user is not None else getattr(request, "user", None)
                )
            )
            if state in ("empty", "compose") and app_settings.QUOTAS
            else None,
        }
    )
    return context
