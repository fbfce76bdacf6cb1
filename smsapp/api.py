"""The REST API under /api/v1/: django-ninja, so the OpenAPI document is generated from the typed code itself.

Every operation needs ``Authorization: Bearer <token>`` (personal tokens, stored hashed). The roles are the UI's:
admins and marketers; admin-only operations call ``require_admin``. Errors are JSON: ``{"detail": "...",
"errors": {"field": ["message", ...]}}``. Each app adds its router in ``_routers()``; the pieces routers share are
in ``smsapp.core.api``.
"""

from __future__ import annotations

import difflib
import json
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser
from ninja.security import HttpBearer
from ninja.throttling import AuthRateThrottle

from .core.api import UNKNOWN_FIELD, ErrorOut, FieldErrors
from .core.roles import is_admin
from .models import ApiToken, token_hash

logger = logging.getLogger("django.request")


class BearerToken(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> ApiToken | None:
        if not token:
            return None
        api_token = ApiToken.objects.active().select_related("user").filter(key_hash=token_hash(token)).first()
        if api_token is None:
            return None
        now = timezone.now()
        # Refresh the "last used" stamp at most once a minute: no write per request under load.
        if api_token.last_used_at is None or (now - api_token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=now)
        request.user = api_token.user
        return api_token


def _docs_need_login(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The schema and docs are for logged-in users or token holders only (nothing is public but login)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated and BearerToken()(request) is None:
            return HttpResponse('{"detail": "Authentication required."}', status=401, content_type="application/json")
        return view(request, *args, **kwargs)

    return wrapper


class JsonObjectParser(Parser):
    """Bodies are JSON objects: a list or a bare value would otherwise fill a schema with its defaults."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        data = json.loads(request.body)
        if not isinstance(data, dict):
            raise ValueError("The request body must be a JSON object.")
        return data


api = NinjaAPI(
    title="smsapp API",
    version="1",
    description="Contacts, segments, Do Not Contact, text messages, the outbound log and campaigns.",
    urls_namespace="api",
    auth=BearerToken(),
    throttle=[AuthRateThrottle(settings.API_RATE_LIMIT)],
    docs_decorator=_docs_need_login,
    parser=JsonObjectParser(),
)


def _error(request: HttpRequest, status: int, detail: str, errors: dict[str, list[str]] | None = None) -> HttpResponse:
    body: dict[str, Any] = {"detail": detail}
    if errors:
        body["errors"] = errors
    return api.create_response(request, body, status=status)


def _unknown_field_message(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f"Unknown field “{name}”: did you mean “{close[0]}”?"
    return f"Unknown field “{name}”. The fields are: {', '.join(known)}."


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors: dict[str, list[str]] = {}
    for item in exc.errors:
        loc = [str(part) for part in item.get("loc", []) if part not in ("body", "payload", "query", "path")]
        if item.get("type") == UNKNOWN_FIELD:
            ctx = item.get("ctx") or {}
            for name in ctx.get("unknown", []):
                key = ".".join([*loc, name])
                errors.setdefault(key, []).append(_unknown_field_message(name, list(ctx.get("known", []))))
            continue
        errors.setdefault(".".join(loc) or "__all__", []).append(str(item.get("msg", "Invalid value.")))
    return _error(request, 400, "Invalid input.", errors)


@api.exception_handler(Exception)
def _server_error(request: HttpRequest, exc: Exception) -> HttpResponse:
    # JSON like every other answer of the API, with DEBUG on or off; the traceback goes to the log, never the client.
    logger.error(
        "Internal Server Error: %s", request.path, exc_info=exc, extra={"status_code": 500, "request": request}
    )
    response = _error(request, 500, "Internal server error: the request was not completed. It has been logged.")
    response._has_been_logged = True  # type: ignore[attr-defined]  # Django would log it again, without the traceback
    return response


@api.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return _error(request, 401, "Authentication required: send Authorization: Bearer <token>.")


@api.exception_handler(PermissionDenied)
def _forbidden(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return _error(request, 403, str(exc) or "Permission denied.")


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(request, 404, "Not found.")


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return _error(request, exc.status_code, str(exc.message))


@api.exception_handler(FieldErrors)
def _field_errors(request: HttpRequest, exc: FieldErrors) -> HttpResponse:
    return _error(request, exc.status, exc.detail, exc.errors)


class MeOut(Schema):
    username: str
    role: str


@api.get(
    "/me", response={200: MeOut, 401: ErrorOut, 429: ErrorOut}, tags=["account"], summary="The token's user and role"
)
def me(request: HttpRequest) -> MeOut:
    return MeOut(username=request.user.get_username(), role="admin" if is_admin(request.user) else "marketer")


def _routers() -> None:
    """Each app's router, added once at import. An app without an ``api`` module yet adds nothing."""
    import importlib

    for app_label, prefix in (
        ("contacts", "/"),
        ("texts", "/"),
        ("campaigns", "/"),
    ):
        try:
            module = importlib.import_module(f"{app_label}.api")
        except ModuleNotFoundError as exc:
            if exc.name != f"{app_label}.api":
                raise
            continue
        api.add_router(prefix, module.router)


_routers()
