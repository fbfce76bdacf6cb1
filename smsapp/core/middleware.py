"""Request guards that must run before any view reads the body."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequiredMiddleware
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse

# Machine endpoints: the API authenticates with Bearer tokens, the providers' callbacks with signatures.
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


class ApiErrorsAsJsonMiddleware:
    """Every error under ``/api/`` is JSON, even those no API code produced: an unknown path (404), a method the
    path does not take (405), a crash outside an operation (Django's HTML 500 page). Clients parse one shape."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path.startswith("/api/") or response.status_code < 400:
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        try:
            phrase = HTTPStatus(response.status_code).phrase
        except ValueError:
            phrase = "Error"
        body: dict[str, Any] = {"detail": f"{phrase}."}
        if response.status_code == 404:
            body["detail"] = f"Not found: no API operation at {request.path}."
        elif response.status_code == 405:
            body["detail"] = f"Method {request.method} is not allowed here; use {response.get('Allow', '')}."
        json_response = JsonResponse(body, status=response.status_code)
        if response.has_header("Allow"):
            json_response["Allow"] = response["Allow"]
        return json_response
