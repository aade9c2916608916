"""Who may generate, by default: an active, logged-in user with the model's change permission."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser

from page_images.permissions import default_permission


def test_an_editor_may(editor, page):
    assert default_permission(editor, page) is True


def test_anonymous_and_inactive_users_may_not_whatever_their_permissions(editor, page):
    assert default_permission(AnonymousUser(), page) is False
    editor.is_active = False
    assert default_permission(editor, page) is False
