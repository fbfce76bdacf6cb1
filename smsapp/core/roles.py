"""Two roles: admins (plugin settings, users) and marketers (everything else).

An admin is an active staff user; every other active user is a marketer. Keeping the role on Django's own
``is_staff`` flag means support staff reach the Django admin with the same switch.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

ViewFunc = TypeVar("ViewFunc", bound=Callable[..., HttpResponse])


def is_admin(user: AbstractBaseUser | AnonymousUser) -> bool:
    return bool(user.is_authenticated and user.is_active and getattr(user, "is_staff", False))


def admin_required(view: ViewFunc) -> ViewFunc:
    """403 for anyone logged in who is not an admin (the login middleware has already sent anonymous users away)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not is_admin(request.user):
            raise PermissionDenied("Only admins can open this page.")
        return view(request, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
