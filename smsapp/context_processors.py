from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from .core.roles import is_admin


def roles(request: HttpRequest) -> dict[str, bool]:
    return {"user_is_admin": is_admin(request.user)}


def inbox(request: HttpRequest) -> dict[str, Any]:
    """The navigation's unread badge, counted only when a page shows the navigation (not for htmx partials)."""

    def count() -> int:
        from texts.services.conversations import conversations_unread

        return conversations_unread() if request.user.is_authenticated else 0

    return {"unread_conversations": SimpleLazyObject(count)}
