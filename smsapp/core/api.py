"""The REST API under /api/v1/: django-ninja, so the OpenAPI document is generated from the typed code itself.

Every operation needs ``Authorization: Bearer <token>`` (personal tokens, stored hashed). The roles are the UI's:
admins and marketers; admin-only operations call ``require_admin``. Errors are JSON: ``{"detail": "...",
"errors": {"field": ["message", ...]}}``. Each app adds its router in ``_routers()``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import difflib
import json
import logging
from collections.abc import Callable, Sequence
from functools import wraps
from typing import Annotated, Any, TypeVar

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser
from ninja.security import HttpBearer
from ninja.throttling import AuthRateThrottle
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from .models import ApiToken, token_hash
from .roles import is_admin

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


def require_admin(request: HttpRequest) -> None:
    if not is_admin(request.user):
        raise PermissionDenied("Only admins can do this.")


def _error(request: HttpRequest, status: int, detail: str, errors: dict[str, list[str]] | None = None) -> HttpResponse:
    body: dict[str, Any] = {"detail": detail}
    if errors:
        body["errors"] = errors
    return api.create_response(request, body, status=status)


UNKNOWN_FIELD = "unknown_field"


class InputSchema(Schema):
    """The base of every request body: a field the schema does not know is a 400 naming it, never ignored.

    ``{"segments": [3]}`` for ``segment_ids`` would otherwise create a text message with no segments, so a broadcast
    silently never happens. ``extra="forbid"`` also puts ``additionalProperties: false`` in the OpenAPI document;
    the validator below runs first so that the answer can suggest the field that was meant.
    """

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_fields(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        known = set(cls.model_fields) | {f.alias for f in cls.model_fields.values() if f.alias}
        unknown = sorted(str(key) for key in data if key not in known)
        if unknown:
            raise PydanticCustomError(
                UNKNOWN_FIELD,
                "Unknown field(s): {unknown}.",
                {"unknown": unknown, "known": sorted(known)},
            )
        return data


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


class FieldErrors(Exception):
    """Raise from an operation for a 400 (or 409) with a message per field, like a form's errors."""

    def __init__(self, errors: dict[str, list[str]], *, status: int = 400, detail: str = "Invalid input.") -> None:
        super().__init__(detail)
        self.errors = errors
        self.status = status
        self.detail = detail


@api.exception_handler(FieldErrors)
def _field_errors(request: HttpRequest, exc: FieldErrors) -> HttpResponse:
    return _error(request, exc.status, exc.detail, exc.errors)


class ErrorOut(Schema):
    detail: str
    errors: dict[str, list[str]] | None = None


class MeOut(Schema):
    username: str
    role: str


@api.get(
    "/me", response={200: MeOut, 401: ErrorOut, 429: ErrorOut}, tags=["account"], summary="The token's user and role"
)
def me(request: HttpRequest) -> MeOut:
    return MeOut(username=request.user.get_username(), role="admin" if is_admin(request.user) else "marketer")


# Shared pieces of the apps' routers.

# Ids fit a signed 64-bit column: a larger one is a 400 from validation, not a database overflow (500).
MAX_ID = 2**63 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
MAX_IDS_PER_REQUEST = 1000


def _no_nul(value: str) -> str:
    # PostgreSQL text and jsonb cannot hold U+0000: refuse it as bad input instead of failing in the database.
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (U+0000)")
    return value


def no_nul_anywhere(value: Any) -> Any:
    """A JSON value with no NUL in any string, key or nested value (for free-form JSON bodies)."""
    if isinstance(value, str):
        return _no_nul(value)
    if isinstance(value, dict):
        return {_no_nul(str(key)): no_nul_anywhere(item) for key, item in value.items()}
    if isinstance(value, list):
        return [no_nul_anywhere(item) for item in value]
    return value


Text = Annotated[str, AfterValidator(_no_nul)]


def _iso_datetime(value: Any) -> Any:
    # ISO 8601 text only: pydantic would also read 0 or "0.5" as Unix timestamps, which the document does not allow.
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time string, e.g. 2026-01-31T09:00:00Z")
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"“{value}” is not an ISO 8601 date-time, e.g. 2026-01-31T09:00:00Z") from None


def _sane_datetime(value: dt.datetime) -> dt.datetime:
    # Aware, in UTC, and in a range both databases store: "9999-12-31T23:59-05:00" would overflow converting to UTC.
    try:
        value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("is out of range") from None
    if not 1900 <= value.year <= 9000:
        raise ValueError("must be between the years 1900 and 9000")
    return value


When = Annotated[dt.datetime, BeforeValidator(_iso_datetime), AfterValidator(_sane_datetime)]

# Every operation can answer these besides its own codes; declared so the OpenAPI document tells the truth.
COMMON_ERRORS: dict[int, type[Schema]] = {401: ErrorOut, 429: ErrorOut}


def responses(ok: dict[int, Any], *errors: int) -> dict[int, Any]:
    """``response=`` for an operation: its success codes, its own error codes, and 401/429 (413 with a body)."""
    return {**ok, **dict.fromkeys(errors, ErrorOut), **COMMON_ERRORS}


class ContactIds(InputSchema):
    contact_ids: list[Id] = Field(min_length=1, max_length=MAX_IDS_PER_REQUEST)


class MembershipChange(Schema):
    changed: int = Field(description="How many contacts joined (or left).")
    member_count: int


# Keyset pagination: ``?cursor=<opaque>&limit=``, newest first by id. No OFFSET and no COUNT(*), so the millionth
# row costs what the first does; the cursor is the last id seen, encoded so clients do not build it themselves.
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
M = TypeVar("M", bound=Model)


class PageQuery(Schema):
    cursor: Text | None = Field(None, description="`next_cursor` from the previous page; absent for the first.")
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


def cursor_encode(pk: int) -> str:
    return base64.urlsafe_b64encode(f"id:{pk}".encode()).decode().rstrip("=")


def cursor_decode(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, raw = text.partition(":")
        pk = int(raw)
        if kind != "id" or not 1 <= pk <= MAX_ID:
            raise ValueError(text)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise FieldErrors({"cursor": ["Invalid cursor: pass next_cursor from the previous page as it is."]}) from None
    return pk


def keyset_page(queryset: QuerySet[M], page: PageQuery) -> tuple[Sequence[M], str | None]:
    """One page of ``queryset`` newest first, and the cursor of the next page (None on the last)."""
    rows = queryset.order_by("-pk")
    if page.cursor:
        rows = rows.filter(pk__lt=cursor_decode(page.cursor))
    items = list(rows[: page.limit + 1])
    next_cursor = cursor_encode(items[page.limit - 1].pk) if len(items) > page.limit else None
    return items[: page.limit], next_cursor


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
