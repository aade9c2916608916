"""Who may generate an image for a record.

Generating costs money and replaces what an editor sees, so the default is the strictest ordinary
Django answer: the model's ``change`` permission. A site can change the rule for all models with
``PAGE_IMAGES["PERMISSION"]`` (a dotted path to ``callable(user, instance) -> bool``), and a model
for itself by overriding ``can_generate_image(user)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.utils.module_loading import import_string

from page_images.conf import app_settings

if TYPE_CHECKING:
    from page_images.models import ImageGeneratingMixin


def default_permission(user: Any, instance: ImageGeneratingMixin) -> bool:
    """The site-wide rule: the PERMISSION setting if given, else the model's change permission."""
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return False
    if app_settings.PERMISSION:
        return bool(import_string(app_settings.PERMISSION)(user, instance))
    meta = instance._meta
    return bool(user.has_perm(f"{meta.app_label}.change_{meta.model_name}"))


def can_generate(user: Any, instance: ImageGeneratingMixin) -> bool:
    """What the trigger view and the templates ask. Anonymous users never may."""
    if not getattr(user, "is_authenticated", False):
        return False
    return bool(instance.can_generate_image(user))
