"""``{% load page_images %}``: the chip, the container, and the one event stream per page.

Thin wrappers over :mod:`page_images.rendering`, so the views render the same markup.

The chip and the container are inclusion tags whose node reuses one isolated context for every
record of a page (see :class:`_PageInclusionNode`): a page may hold hundreds of them, and Django's
own inclusion node would copy the page's context, and walk the full variable lookup, for each.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, cast
from weakref import WeakKeyDictionary

from django import template
from django.template.base import NodeList, Template, Variable, VariableNode
from django.template.library import InclusionNode
from django.urls import reverse
from django.utils.safestring import SafeString

from page_images.models import ImageGeneratingMixin
from page_images.rendering import (
    chip_context,
    container_context,
    remember,
    rendered_references,
    streaming_enabled,
)

if TYPE_CHECKING:
    from collections.abc import Callable

register = template.Library()


class _SafeValueNode(VariableNode):
    """``{{ name }}`` that outputs the context's ``name`` as is when it is a SafeString.

    For such a value that is exactly what Django's lookup, localization and escaping produce; any
    other value (missing, text to escape, a number, a callable) goes Django's usual way.
    """

    def __init__(self, node: VariableNode, name: str) -> None:
        super().__init__(node.filter_expression)
        self.__dict__.update(node.__dict__)  # token and origin, for debug pages
        self.name = name

    def render_annotated(self, context: template.Context) -> int | str:
        value = context.dicts[-1].get(self.name)  # where Context[name] looks first
        if type(value) is SafeString:
            return value
        return super().render_annotated(context)


#: Each loaded template (the cached loader keeps one per name) and its copy for the tags.
_FAST_COPIES: WeakKeyDictionary[Template, Template] = WeakKeyDictionary()


def _fast_copy(loaded: Template) -> Template:
    """A copy of ``loaded`` whose top-level ``{{ name }}`` nodes are :class:`_SafeValueNode`.

    Only the top level: the nodes inside ``{% if %}`` and the like belong to those tags' own lists,
    which are shared with ``loaded`` and left as Django compiled them.
    """
    fast = _FAST_COPIES.get(loaded)
    if fast is None:
        nodes = NodeList()
        for node in loaded.nodelist:
            if type(node) is VariableNode and not node.filter_expression.filters:
                variable = node.filter_expression.var
                if (
                    isinstance(variable, Variable)
                    and variable.lookups is not None
                    and len(variable.lookups) == 1
                    and not variable.translate
                ):
                    node = _SafeValueNode(node, variable.lookups[0])
            nodes.append(node)
        nodes.contains_nontext = loaded.nodelist.contains_nontext
        fast = copy.copy(loaded)
        fast.nodelist = nodes
        _FAST_COPIES[loaded] = fast
    return fast


class _PageInclusionNode(InclusionNode):
    """An inclusion tag's node that renders every record of a page in one reused context.

    Django's inclusion node copies the page's context (and its render context) for every record;
    this one makes that isolated copy once per render of the page, then only pushes and pops the
    record's values, so the included template sees exactly what it would see otherwise. The
    template comes from the engine's loaders as before, so a project's own copy still wins; its
    top-level ``{{ name }}`` nodes output a value already marked safe without the lookup chain.
    """

    def __init__(self, node: InclusionNode, template_name: str) -> None:
        super().__init__(node.func, node.takes_context, node.args, node.kwargs, template_name)
        self.template_name = template_name

    def render(self, context: template.Context) -> str:
        resolved_args, resolved_kwargs = self.get_resolved_arguments(context)
        values = self.func(*resolved_args, **resolved_kwargs)
        cached: tuple[Template, template.Context] | None = context.render_context.get(self)
        if cached is None:
            engine = cast("Template", context.template).engine
            cached = (_fast_copy(engine.get_template(self.template_name)), context.new())
            context.render_context[self] = cached
        # Never in use by another render of this node: the record's template renders under a
        # render state of its own (below), and every template it includes pushes one more, so
        # none of them can find this entry again while it is in use.
        included, isolated = cached
        # What {% autoescape %}, {% localize %} and {% localtime %} may have changed around the tag.
        isolated.autoescape = context.autoescape
        isolated.use_l10n = context.use_l10n
        isolated.use_tz = context.use_tz
        # Template.render(isolated) without its context managers: a fresh render state for the
        # record's template, then its nodes (through _render, which the test runner instruments).
        render_context = isolated.render_context
        outer = render_context.template
        render_context.template = included
        render_context.dicts.append({})
        isolated.dicts.append(values)
        try:
            return cast("str", included._render(isolated))  # type: ignore[attr-defined]
        finally:
            isolated.dicts.pop()
            render_context.dicts.pop()
            render_context.template = outer


def _page_inclusion_tag(template_name: str) -> Callable[[Any], Any]:
    """``register.inclusion_tag(template_name, takes_context=True)``, as a _PageInclusionNode."""

    def register_tag(func: Any) -> Any:
        register.inclusion_tag(template_name, takes_context=True)(func)
        compile_inclusion = register.tags[func.__name__]

        def compile_tag(parser: Any, token: Any) -> _PageInclusionNode:
            # Django's own parsing of the arguments, then this node around them.
            return _PageInclusionNode(compile_inclusion(parser, token), template_name)

        register.tag(func.__name__, compile_tag)
        return func

    return register_tag


def _checked(instance: Any) -> ImageGeneratingMixin:
    if not isinstance(instance, ImageGeneratingMixin):
        raise template.TemplateSyntaxError(
            "page_images tags need a record whose model uses ImageGeneratingMixin, "
            f"not {instance!r}"
        )
    return instance


@_page_inclusion_tag("page_images/chip.html")
def page_image_chip(context: template.Context, instance: Any) -> dict[str, Any]:
    """The "Generate image" chip alone, shown when the record has no image and is not generating.

    Clicking it replaces the chip with the record's container, which then updates by itself.
    """
    record = _checked(instance)
    chip = chip_context(context.get("request"), record, target="this")
    chip["show"] = (
        not record.image_file and not record.image_generating and bool(chip["can_generate"])
    )
    if chip["show"]:  # once clicked it is a container, which the page's stream must follow
        remember(context.get("request"), record.image_reference)
    chip["csrf_token"] = context.get("csrf_token")
    return chip


@_page_inclusion_tag("page_images/container.html")
def page_image(context: template.Context, instance: Any, fallback: str = "") -> dict[str, Any]:
    """The record's image container: chip, spinner, picture or error, kept up to date.

    ``fallback`` names a template shown instead when the record has no picture and the viewer may
    not generate one (a site's own "no image" placeholder); it sees the page's context.
    """
    container = container_context(context.get("request"), _checked(instance))
    container["csrf_token"] = context.get("csrf_token")
    container["fallback"] = fallback
    return container


@register.inclusion_tag("page_images/stream.html", takes_context=True)
def page_images_stream(context: template.Context) -> dict[str, Any]:
    """Once per page: the script and the page's one event stream.

    Placed after the containers, it carries the stream's URL; placed before them (in ``<head>``,
    say), it cannot know them yet, so it carries the URL the script asks for the page's token
    once the containers are there.
    """
    from page_images.live.tokens import sign_references

    request = context.get("request")
    references = rendered_references(request)
    stream_url = token_url = ""
    if streaming_enabled(request):
        token_url = reverse("page_images:stream_token")
    if references and token_url:
        session = getattr(request, "session", None)
        token = sign_references(references, session_key=getattr(session, "session_key", None))
        stream_url = f"{reverse('page_images:events')}?refs={token}"
    return {"stream_url": stream_url, "token_url": token_url}
