"""Shared pieces of the apps' API routers (django-ninja): request schemas that refuse unknown fields, field errors,
typed ids, text and date-times, the common error responses, and keyset pagination.

The API itself (the ``NinjaAPI`` instance, its authentication and error handlers) is the shell's: ``smsapp.api``.
Errors are JSON: ``{"detail": "...", "errors": {"field": ["message", ...]}}``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Sequence
from typing import Annotated, Any, TypeVar

from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from ninja import Schema
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from .roles import is_admin


def require_admin(request: HttpRequest) -> None:
    if not is_admin(request.user):
        raise PermissionDenied("Only admins can do this.")


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


class FieldErrors(Exception):
    """Raise from an operation for a 400 (or 409) with a message per field, like a form's errors."""

    def __init__(self, errors: dict[str, list[str]], *, status: int = 400, detail: str = "Invalid input.") -> None:
        super().__init__(detail)
        self.errors = errors
        self.status = status
        self.detail = detail


class ErrorOut(Schema):
    detail: str
    errors: dict[str, list[str]] | None = None


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
