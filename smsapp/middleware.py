"""Request guards that must run before any view reads the body."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequiredMiddleware
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse

# Machine endpoints: the API authenticates with Bearer tokens, the Twilio callback with signatures.
MACHINE_PREFIXES = ("/api/", "/sms/")


class LoginRequiredMiddleware(DjangoLoginRequiredMiddleware):
    """Django's: every page needs a login, except the machine endpoints, which answer 401/403 themselves."""

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., HttpResponseBase],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponseBase | None:
        if request.path.startswith(MACHINE_PREFIXES):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


class BodySizeLimitMiddleware:
    """413 for machine requests whose declared body is over the limit, before anything reads it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(MACHINE_PREFIXES):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return JsonResponse({"detail": "Content-Length is not a number."}, status=400)
            if length > settings.MACHINE_MAX_BODY_BYTES:
                return JsonResponse(
                    {"detail": f"Request body is {length} bytes; the limit is {settings.MACHINE_MAX_BODY_BYTES}."},
                    status=413,
                )
        return self.get_response(request)
