"""The Django admin: the live container in the change form, a state column and filter, a bulk
action, and a read-only history of every generation.

``ImageGeneratingAdmin`` is a mixin for a site's own ``ModelAdmin`` of a model that uses
:class:`~page_images.models.ImageGeneratingMixin`. It changes nothing a site already declared: the
container is one more read-only field (placed after the image field unless the admin names its
own ``fields`` or ``fieldsets``, where it is ``"page_image_container"``), the column and filter
are offered as names to put into ``list_display`` and ``list_filter``, and the action is added to
the site's own.

Django loads this module at start-up (the admin's autodiscovery), so it imports nothing heavy at
module level: the claims, the queue and the rate limit are imported when an action runs.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.db.models import Q
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from page_images import quotas
from page_images.exceptions import QuotaExceededError
from page_images.history import Generation, content_type_of
from page_images.permissions import can_generate
from page_images.wording import shown

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from django.db.models import Model, QuerySet
    from django.http import HttpRequest, HttpResponse

    from page_images.models import ImageGeneratingMixin

__all__ = ["GenerationAdmin", "ImageGeneratingAdmin", "ImageStateFilter", "image_state_q"]

#: The request the change form is being drawn for. Django calls a read-only field's method with
#: the record only, and one ModelAdmin instance serves every thread, so the request is passed
#: this way (per thread, per asyncio task) rather than kept on ``self``.
_request: contextvars.ContextVar[HttpRequest | None] = contextvars.ContextVar(
    "page_images_admin_request", default=None
)
#: Set on the request once its page carries the event stream's script: one stream per page.
_STREAM_RENDERED = "_page_images_admin_stream"

STATE_LABELS = {
    "generating": _("generating"),
    "review": _("waiting for review"),
    "ready": _("has a picture"),
    "error": _("failed"),
    "empty": _("no picture"),
}


def image_state_q(model: type[ImageGeneratingMixin], state: str) -> Q:
    """The rows whose :attr:`~ImageGeneratingMixin.image_state` is ``state``, as a query.

    The same order of tests as the property, so the filter and the column never disagree: a job
    presumed dead (:func:`page_images.claims.lost`) is not "generating" any more, and its record
    shows its picture, or the error to retry.
    """
    from page_images.claims import lost

    field = model.image_field_name
    has_file = ~Q(**{field: ""}) & Q(**{f"{field}__isnull": False})
    generating = Q(image_generating=True) & ~lost()
    review = Q(image_review=True, image_generating=False)
    settled = ~generating & ~review
    queries = {
        "generating": generating,
        "review": review,
        "ready": settled & has_file,
        "error": settled & ~has_file & (~Q(image_error="") | Q(image_generating=True)),
        "empty": settled & ~has_file & Q(image_error="", image_generating=False),
    }
    return queries[state]


class ImageStateFilter(admin.SimpleListFilter):
    """Filter the change list by what the record's container shows."""

    title = _("image")
    parameter_name = "image_state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(STATE_LABELS.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        state = self.value()
        if state not in STATE_LABELS:
            return queryset
        return queryset.filter(image_state_q(queryset.model, state))


def check_quota(request: HttpRequest, records: Sequence[ImageGeneratingMixin]) -> str | None:
    """Whether ``request.user`` may start ``len(records)`` generations now, by the site's quotas.

    The one place the admin's action asks: a refusal message, or None to go on.
    """
    try:
        quotas.enforce_generations(getattr(request, "user", None), len(records))
    except QuotaExceededError as exc:
        return exc.user_message
    return None


@contextmanager
def _drawing_for(request: HttpRequest) -> Iterator[None]:
    token = _request.set(request)
    try:
        yield
    finally:
        _request.reset(token)


class ImageGeneratingAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """A ``ModelAdmin`` mixin for a model with a generated picture.

    Put it before ``admin.ModelAdmin``::

        @admin.register(Page)
        class PageAdmin(ImageGeneratingAdmin, admin.ModelAdmin):
            list_display = ["__str__", "page_image_state"]
            list_filter = [ImageStateFilter]

    The change form shows the record's live container (chip, progress, picture, error, review)
    after the image field; it updates itself while the page is open, as on the site.
    """

    #: The admin's pages have no htmx of their own: the one django-htmx ships (``pip install
    #: django-page-images[htmx]``), served from the site's static files, so the admin needs no
    #: network. A site that already loads htmx in its admin templates sets this to None; one
    #: without django-htmx names its own copy (a static path).
    page_images_htmx: ClassVar[str | None] = "django_htmx/htmx-2.min.js"

    @property
    def media(self) -> forms.Media:
        """The container's stylesheet and htmx: ``admin.js`` and the event stream's script come
        with the container itself, so a page without one loads neither."""
        scripts = []
        htmx = self.page_images_htmx
        if htmx and (
            htmx != ImageGeneratingAdmin.page_images_htmx or apps.is_installed("django_htmx")
        ):
            scripts.append(static(htmx))
        return super().media + forms.Media(
            js=scripts,
            css={"all": [static("page_images/page_images.css"), static("page_images/admin.css")]},
        )

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        """The site's actions and "Generate images for the selected" (unless the admin has
        switched actions off with ``actions = None``).

        Django 6.1 asks once per place (``action_location``: the change list or the change
        form, where the action makes the one record's picture) and deprecates an override
        without the parameter; earlier versions ask without it.
        """
        where = {} if action_location is None else {"action_location": action_location}
        actions = super().get_actions(request, **where)
        if self.actions is None or IS_POPUP_VAR in request.GET or "generate_images" in actions:
            return actions
        action = self.get_action("generate_images")
        if action is not None and self.has_change_permission(request):
            actions["generate_images"] = action
        return actions

    # The change form.

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        with _drawing_for(request):
            response = super().changeform_view(request, object_id, form_url, extra_context)
            # A TemplateResponse is drawn later, when the middleware is done: draw it now,
            # while the container can still find the request.
            render = getattr(response, "render", None)
            if render is not None:
                render()
        return response

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and "page_image_container" not in fields:
            fields.append("page_image_container")
        return fields

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        """The container goes right after the image field (or last, if the form has none),
        unless the admin placed it itself."""
        fields = list(super().get_fields(request, obj))
        if obj is None or self.fields is not None or "page_image_container" not in fields:
            return fields
        fields.remove("page_image_container")
        image_field = self.model.image_field_name
        where = fields.index(image_field) + 1 if image_field in fields else len(fields)
        fields.insert(where, "page_image_container")
        return fields

    @admin.display(description=_("Generated image"))
    def page_image_container(self, obj: ImageGeneratingMixin) -> str:
        """The record's container, as ``{% page_image %}`` draws it on the site.

        The container's forms cannot sit in the change form's own ``<form>`` (a browser drops a
        form inside a form, and its button would save the record instead), so it is sent inside
        a ``<template>``, which keeps them, and ``admin.js`` puts it in place before htmx starts.
        """
        request = _request.get()
        if request is None or obj.pk is None:
            return ""
        stream = not getattr(request, _STREAM_RENDERED, False)
        setattr(request, _STREAM_RENDERED, True)
        context = {"record": obj, "stream": stream, "history_url": _history_url(request, obj)}
        return render_to_string("page_images/admin/container.html", context, request)

    # The change list.

    @admin.display(description=_("image"))
    def page_image_state(self, obj: ImageGeneratingMixin) -> str:
        """A thumbnail of the picture, if any, and what the record's container shows."""
        state = obj.image_state
        label = STATE_LABELS[state]
        if obj.image_file:
            return format_html(
                '<span class="page-images-admin-state page-images-admin-{}">'
                '<img class="page-images-admin-thumbnail" src="{}" alt="" loading="lazy">'
                "{}</span>",
                state,
                obj.image_file.url,
                label,
            )
        return format_html(
            '<span class="page-images-admin-state page-images-admin-{}">{}</span>', state, label
        )

    # The action.

    @admin.action(description=_("Generate images for the selected"), permissions=["change"])
    def generate_images(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Claim and queue a picture for each selected record without one, as the chip would.

        The same claims as a click (one job per record, none over a picture or beside a running
        job), the same per-record permission, and the rate limit counted once for the action.
        """
        from page_images.exceptions import EnqueueError
        from page_images.queueing import request_generations
        from page_images.ratelimit import RateLimitUnavailable, allow
        from page_images.specs import record_prompt

        try:
            allowed = allow(request.user)
        except RateLimitUnavailable:
            self.message_user(
                request,
                _("Clicks cannot be counted right now (the site's cache is unreachable)."),
                messages.ERROR,
            )
            return
        if not allowed:
            self.message_user(
                request, _("Too many image requests: wait a minute and try again."), messages.ERROR
            )
            return
        skipped = {"picture": 0, "generating": 0, "permission": 0, "text": 0}
        wanted: list[ImageGeneratingMixin] = []
        for record in queryset:
            state = record.image_state
            if not can_generate(request.user, record):
                skipped["permission"] += 1
            elif state == "generating":
                skipped["generating"] += 1
            elif record.image_file:
                skipped["picture"] += 1
            elif not record_prompt(record):
                skipped["text"] += 1
            else:
                wanted.append(record)
        refusal = check_quota(request, wanted) if wanted else None
        if refusal is not None:
            self.message_user(request, refusal, messages.ERROR)
            return
        try:
            started = request_generations(wanted, user=request.user)
        except EnqueueError as exc:
            self.message_user(request, shown(str(exc)), messages.ERROR)
            return
        # Claimed by someone else between the reading and the claim.
        skipped["generating"] += len(wanted) - len(started)
        self._report(request, len(started), skipped)

    def _report(self, request: HttpRequest, queued: int, skipped: dict[str, int]) -> None:
        reasons = [
            ngettext("%d had a picture", "%d had a picture", skipped["picture"])
            % skipped["picture"],
            ngettext(
                "%d was already generating", "%d were already generating", skipped["generating"]
            )
            % skipped["generating"],
            ngettext("%d you may not change", "%d you may not change", skipped["permission"])
            % skipped["permission"],
            ngettext("%d had no text", "%d had no text", skipped["text"]) % skipped["text"],
        ]
        shown = [reason for reason, count in zip(reasons, skipped.values(), strict=True) if count]
        text = ngettext("Queued %d image.", "Queued %d images.", queued) % queued
        if shown:
            text += " " + _("Skipped: %s.") % ", ".join(shown)
        self.message_user(request, text, messages.SUCCESS if queued else messages.WARNING)


def _history_url(request: HttpRequest, record: ImageGeneratingMixin) -> str:
    """The history's change list narrowed to ``record``, for those who may read it."""
    if not request.user.has_perm("page_images.view_generation"):
        return ""
    content_type = content_type_of(record)
    query = urlencode({_RECORD_LOOKUPS[0]: content_type.pk, _RECORD_LOOKUPS[1]: record.pk})
    return f"{reverse('admin:page_images_generation_changelist')}?{query}"


#: The query a record's history link narrows the history's change list by.
_RECORD_LOOKUPS = ("content_type__id__exact", "object_id__exact")


def _record_link(generation: Generation) -> str:
    ct = generation.content_type
    label = f"{ct.app_label}.{ct.model} #{generation.object_id}"
    try:
        url = reverse(f"admin:{ct.app_label}_{ct.model}_change", args=[generation.object_id])
    except NoReverseMatch:
        return label
    return format_html('<a href="{}">{}</a>', url, label)


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """The history of every generation, to read: who asked, what, which model, what it cost.

    Nobody edits it, superusers included: it is the record of what was spent and why, written by
    the app alone.
    """

    list_display = [
        "created_at",
        "record_link",
        "user",
        "status",
        "model",
        "size",
        "cost",
        "duration_display",
    ]
    list_filter = ["status", "model", "created_at"]
    search_fields = ["prompt"]
    list_select_related = ["content_type", "user"]
    date_hierarchy = "created_at"
    # The error is stored as the editor read it, in English (page_images.wording): shown here in
    # the reader's language, as the record's container shows it.
    exclude = ["error"]
    readonly_fields = ["error_shown"]

    @admin.display(description=_("error"))
    def error_shown(self, obj: Generation) -> str:
        return shown(obj.error)

    @admin.display(description=_("record"))
    def record_link(self, obj: Generation) -> str:
        return _record_link(obj)

    @admin.display(description=_("duration"))
    def duration_display(self, obj: Generation) -> str:
        duration = obj.duration
        return "" if duration is None else f"{duration.total_seconds():.1f} s"

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        """Also the record a change form's "History" link narrows the list to."""
        return lookup in _RECORD_LOOKUPS or super().lookup_allowed(lookup, value, request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False
