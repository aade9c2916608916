"""Records, users and logged-in sessions, made in the orchestrating process (Django set up)."""

from __future__ import annotations

import secrets
from typing import Any

from benchmarks.harness import setup_django

__all__ = ["articles", "editor", "references", "session_headers", "setup_django", "signed_refs"]

CSRF = "b" * 32  # an unmasked CSRF secret: the cookie and the header carry the same value


def articles(count: int, *, with_image: bool = False, prefix: str = "bench") -> list[int]:
    """``count`` new records (their pictures set when ``with_image``); returns their pks."""
    setup_django()
    from benchmarks.site.models import Article

    made = Article.objects.bulk_create(
        Article(
            title=f"{prefix} {i}",
            text=f"A lighthouse on a cliff at dusk, number {i}, gulls over the waves",
            image=f"page_images/bench/article/{prefix}-{i}.png" if with_image else "",
        )
        for i in range(count)
    )
    return [article.pk for article in made]


def signed_refs(pks: list[int]) -> list[str]:
    """The chips' signed references (what the trigger and fragment views are given)."""
    setup_django()
    from django.core import signing

    from page_images.signer import SALT

    signer = signing.Signer(salt=SALT)
    return [signer.sign(f"bench.article:{pk}") for pk in pks]


def references(pks: list[int]) -> list[str]:
    return [f"bench.article:{pk}" for pk in pks]


def editor(username: str | None = None) -> Any:
    """A user with the change permission on the benchmark's records."""
    setup_django()
    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user(username or f"editor-{secrets.token_hex(4)}", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="change_article"))
    return user


def session_headers(user: Any) -> dict[str, str]:
    """Headers of a logged-in browser: session and CSRF cookies, the CSRF header, htmx's header."""
    setup_django()
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    cookie = f"{settings.SESSION_COOKIE_NAME}={session.session_key}; csrftoken={CSRF}"
    return {
        "Cookie": cookie,
        "X-CSRFToken": CSRF,
        "HX-Request": "true",
        "Content-Type": "application/x-www-form-urlencoded",
    }
