from __future__ import annotations

from django.http import HttpRequest

from .core.roles import is_admin


def roles(request: HttpRequest) -> dict[str, bool]:
    return {"user_is_admin": is_admin(request.user)}
