"""Marketing consent per channel and address, with its log: writes named ``<entity>_<action>`` and the reads of state.

A contact's consent is that of its address (``Consent``, no row = never asked), so it outlives the contact like an
opt-out. Each change appends a ``ConsentEvent`` (when, source, consent text, who) and a timeline entry. An older
decision (an import of last year's sign-ups) never overwrites a newer one, but is logged all the same.
Who may receive marketing is decided in ``contacts.selectors`` from ``Consent``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from .models import (
    Channel,
    Consent,
    ConsentEvent,
    ConsentEventStatus,
    ConsentRequest,
    ConsentSource,
    ConsentStatus,
    Contact,
    TimelineEvent,
)
from .selectors import address_field


class ConsentError(ValueError):
    """Consent cannot be recorded (the contact has no address on the channel)."""


@dataclass(frozen=True)
class ConsentState:
    status: str
    at: dt.datetime | None
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "at": self.at, "source": self.source}


NEVER = ConsentState(ConsentStatus.NEVER, None, "")


def consent_state(*, address: str | None, channel: str = Channel.SMS) -> ConsentState:
    if not address:
        return NEVER
    row = Consent.objects.filter(channel=channel, address=str(address)).first()
    return ConsentState(row.status, row.at, row.source) if row else NEVER


def consent_states(*, addresses: Iterable[Any], channel: str = Channel.SMS) -> dict[str, ConsentState]:
    """The consent of many addresses in one query (a page of contacts); absent ones are never asked."""
    wanted = sorted({str(a) for a in addresses if a})
    rows = Consent.objects.filter(channel=channel, address__in=wanted) if wanted else Consent.objects.none()
    return {row.address: ConsentState(row.status, row.at, row.source) for row in rows}


def _title(status: str, source: str, channel: str) -> str:
    return f"{channel.upper()} marketing consent: {ConsentStatus(status).label} ({ConsentSource(source).label})"


# The state upsert: a decision replaces the current one only if it is as recent or more (``at``).
_UPSERT_TAIL = (
    " ON CONFLICT (channel, address) DO UPDATE SET status = excluded.status, at = excluded.at, "
    "source = excluded.source, updated_at = excluded.updated_at WHERE {table}.at <= excluded.at"
)


@transaction.atomic
def consent_record(
    *,
    contact: Contact,
    status: str,
    source: str,
    channel: str = Channel.SMS,
    at: dt.datetime | None = None,
    consent_text: str = "",
    recorded_by: str = "",
    comment: str = "",
) -> ConsentEvent:
    """Record a contact's marketing consent decision (subscribed or unsubscribed) on its address; the log entry.

    Raises ``ConsentError`` for a contact without an address on ``channel``.
    """
    if status not in (ConsentStatus.SUBSCRIBED, ConsentStatus.UNSUBSCRIBED):
        raise ConsentError(f"Consent is subscribed or unsubscribed, not {status!r}.")
    address = getattr(contact, address_field(channel))
    if not address:
        raise ConsentError(f"The contact has no {address_field(channel)} number to record consent for.")
    at = at or timezone.now()
    table = Consent._meta.db_table
    stamp = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (channel, address, status, at, source, updated_at) VALUES (%s, %s, %s, %s, %s, %s)"  # noqa: S608
            + _UPSERT_TAIL.format(table=table),
            [channel, str(address), status, stamp(at), source, stamp(timezone.now())],
        )
    event = ConsentEvent.objects.create(
        channel=channel,
        address=str(address),
        contact=contact,
        status=status,
        source=source,
        consent_text=consent_text,
        recorded_by=recorded_by[:150],
        comment=comment,
        occurred_at=at,
    )
    TimelineEvent.objects.create(
        contact=contact,
        kind=f"consent.{status}",
        title=_title(status, source, channel),
        detail={"channel": channel, "source": source, "recorded_by": recorded_by, "consent_text": consent_text},
        occurred_at=at,
    )
    return event


def consent_record_matching(
    *,
    rows_sql: str,
    params: Iterable[Any],
    source: str,
    channel: str = Channel.SMS,
    recorded_by: str = "",
    comment: str = "",
) -> int:
    """Record many decisions in three statements, whatever their number (an import). ``rows_sql`` selects
    ``contact_id, address, status, at`` with one row per address. Returns how many were logged."""
    params = tuple(params)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    table, events, timeline = Consent._meta.db_table, ConsentEvent._meta.db_table, TimelineEvent._meta.db_table
    json_value = "CAST(%s AS jsonb)" if connection.vendor == "postgresql" else "%s"
    titles = {s: _title(s, source, channel) for s in (ConsentStatus.SUBSCRIBED, ConsentStatus.UNSUBSCRIBED)}
    detail = json.dumps({"channel": channel, "source": source, "recorded_by": recorded_by})
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (channel, address, status, at, source, updated_at) "  # noqa: S608
            f"SELECT %s, r.address, r.status, r.at, %s, %s FROM ({rows_sql}) r WHERE true"
            + _UPSERT_TAIL.format(table=table),
            [channel, source, now, *params],
        )
        cursor.execute(
            f"INSERT INTO {events} (channel, address, contact_id, status, source, consent_text, recorded_by, "  # noqa: S608
            f"comment, occurred_at, created_at) SELECT %s, r.address, r.contact_id, r.status, %s, '', %s, %s, r.at, %s "
            f"FROM ({rows_sql}) r",
            [channel, source, recorded_by[:150], comment, now, *params],
        )
        logged = max(cursor.rowcount, 0)
        cursor.execute(
            f"INSERT INTO {timeline} (contact_id, kind, title, detail, occurred_at, created_at) "  # noqa: S608
            "SELECT r.contact_id, 'consent.' || r.status, CASE r.status WHEN 'subscribed' THEN %s ELSE %s END, "
            f"{json_value}, r.at, %s FROM ({rows_sql}) r",
            [titles[ConsentStatus.SUBSCRIBED], titles[ConsentStatus.UNSUBSCRIBED], detail, now, *params],
        )
    return logged


def consent_log(*, channel: str | None = None) -> Any:
    """Every consent event, oldest first, with its contact's name where the contact still exists (the CSV export)."""
    events = ConsentEvent.objects.select_related("contact").order_by("occurred_at", "id")
    return events.filter(channel=channel) if channel else events


# Double opt-in: a request, then a YES from the number within the window


@transaction.atomic
def consent_request_create(
    *,
    contact: Contact,
    source: str,
    consent_text: str,
    window: dt.timedelta,
    channel: str = Channel.SMS,
    recorded_by: str = "",
) -> ConsentRequest:
    """Record a double opt-in request for the contact's address (pending in the log); the caller sends the
    confirmation text. Raises ``ConsentError`` for a contact without an address on ``channel``."""
    address = getattr(contact, address_field(channel))
    if not address:
        raise ConsentError(f"The contact has no {address_field(channel)} number to ask consent of.")
    now = timezone.now()
    request = ConsentRequest.objects.create(
        channel=channel,
        address=str(address),
        contact=contact,
        source=source,
        consent_text=consent_text,
        requested_at=now,
        expires_at=now + window,
    )
    ConsentEvent.objects.create(
        channel=channel,
        address=str(address),
        contact=contact,
        status=ConsentEventStatus.PENDING,
        source=source,
        consent_text=consent_text,
        recorded_by=recorded_by[:150],
        comment=f"Waiting for YES until {request.expires_at:%Y-%m-%d %H:%M} UTC",
        occurred_at=now,
    )
    TimelineEvent.objects.create(
        contact=contact,
        kind="consent.pending",
        title=f"{channel.upper()} marketing consent requested ({ConsentSource(source).label}): waiting for YES",
        detail={"channel": channel, "source": source, "request_id": request.pk, "consent_text": consent_text},
        occurred_at=now,
    )
    return request


@transaction.atomic
def consent_request_confirm(
    *, contact: Contact, channel: str = Channel.SMS, recorded_by: str = "", comment: str = ""
) -> ConsentEvent | None:
    """The address answered YES: confirm its latest open request (not expired, not confirmed) and subscribe it with
    source ``double_opt_in`` and the request's consent text; None when there is no open request (nothing changes).

    The request is taken by one conditional UPDATE, so two YES replies at once subscribe once."""
    address = getattr(contact, address_field(channel))
    if not address:
        return None
    now = timezone.now()
    open_requests = ConsentRequest.objects.filter(
        channel=channel, address=str(address), confirmed_at__isnull=True, expires_at__gt=now
    ).order_by("-requested_at", "-id")
    latest = open_requests.values_list("pk", flat=True).first()
    if latest is None or not open_requests.filter(pk=latest).update(confirmed_at=now):
        return None
    request = ConsentRequest.objects.get(pk=latest)
    return consent_record(
        contact=contact,
        status=ConsentStatus.SUBSCRIBED,
        source=ConsentSource.DOUBLE_OPT_IN,
        channel=channel,
        at=now,
        consent_text=request.consent_text,
        recorded_by=recorded_by,
        comment=comment or f"Replied YES to the request of {request.requested_at:%Y-%m-%d %H:%M} UTC",
    )
