"""Writes on contacts, named ``<entity>_<action>``. Other apps call these, never the models' writes directly."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from .models import Channel, Contact, DoNotContact, TimelineEvent
from .phones import phone_to_e164, region_of


def timeline_record(
    *,
    contact: Contact | int,
    kind: str,
    title: str,
    detail: dict[str, Any] | None = None,
    occurred_at: dt.datetime | None = None,
) -> TimelineEvent:
    """Append one entry to a contact's timeline (``kind`` like ``sms.sent``, ``dnc.added``, ``campaign.event``)."""
    contact_id = contact if isinstance(contact, int) else contact.pk
    return TimelineEvent.objects.create(
        contact_id=contact_id,
        kind=kind,
        title=title[:255],
        detail=detail or {},
        occurred_at=occurred_at or timezone.now(),
    )


def timeline_record_many(*, entries: list[TimelineEvent]) -> None:
    """Append many entries in one statement (pipelines writing one entry per recipient)."""
    now = timezone.now()
    for entry in entries:
        entry.occurred_at = entry.occurred_at or now
    TimelineEvent.objects.bulk_create(entries, batch_size=1000)


def dnc_active(*, channel: str = Channel.SMS) -> QuerySet[DoNotContact]:
    return DoNotContact.objects.filter(channel=channel, lifted_at__isnull=True)


def contact_is_dnc(*, contact: Contact | int, channel: str = Channel.SMS) -> bool:
    contact_id = contact if isinstance(contact, int) else contact.pk
    return dnc_active(channel=channel).filter(contact_id=contact_id).exists()


def contacts_with_dnc_flag(queryset: QuerySet[Contact], *, channel: str = Channel.SMS) -> QuerySet[Contact]:
    """Annotate ``is_dnc`` in SQL (one subquery, no query per row)."""
    return queryset.annotate(is_dnc=Exists(dnc_active(channel=channel).filter(contact_id=OuterRef("pk"))))


@transaction.atomic
def dnc_add(
    *,
    contact: Contact,
    reason: str,
    source: str,
    channel: str = Channel.SMS,
    comment: str = "",
) -> tuple[DoNotContact, bool]:
    """Mark a contact Do Not Contact on a channel. Returns (entry, created); an active entry is kept as it is.

    The partial unique constraint makes two concurrent calls produce one active entry.
    """
    existing = dnc_active(channel=channel).filter(contact=contact).first()
    if existing:
        return existing, False
    try:
        with transaction.atomic():
            entry = DoNotContact.objects.create(
                contact=contact, channel=channel, reason=reason, source=source, comment=comment
            )
    except IntegrityError:
        return dnc_active(channel=channel).get(contact=contact), False
    timeline_record(
        contact=contact,
        kind="dnc.added",
        title=f"Do Not Contact ({channel.upper()}): {entry.get_reason_display()}",
        detail={"channel": channel, "reason": reason, "source": source, "comment": comment},
    )
    return entry, True


@transaction.atomic
def dnc_remove(
    *,
    contact: Contact,
    source: str,
    channel: str = Channel.SMS,
    comment: str = "",
    only_reasons: set[str] | None = None,
    only_sources: set[str] | None = None,
) -> bool:
    """Lift a contact's active Do Not Contact on a channel; history stays. Returns whether one was lifted.

    ``only_sources`` restricts what may be lifted: an opt-in keyword lifts only an opt-out a keyword made.
    """
    entries = dnc_active(channel=channel).filter(contact=contact).select_for_update()
    if only_reasons is not None:
        entries = entries.filter(reason__in=only_reasons)
    if only_sources is not None:
        entries = entries.filter(source__in=only_sources)
    now = timezone.now()
    lifted = entries.update(lifted_at=now, lifted_by=source, lifted_comment=comment)
    if lifted:
        timeline_record(
            contact=contact,
            kind="dnc.removed",
            title=f"Do Not Contact ({channel.upper()}) lifted",
            detail={"channel": channel, "source": source, "comment": comment},
        )
    return bool(lifted)


def contact_get_or_create_by_mobile(*, mobile: str, country: str = "") -> tuple[Contact, bool]:
    """The contact who owns this number, created if unknown. Safe under concurrency (unique ``mobile``).

    Raises ``InvalidPhoneNumber`` for input that is not a mobile number.
    """
    e164 = phone_to_e164(mobile, region=country or None)
    contact = Contact.objects.filter(mobile=e164).first()
    if contact:
        return contact, False
    try:
        with transaction.atomic():
            contact = Contact.objects.create(mobile=e164, country=country.upper() or region_of(e164))
    except IntegrityError:
        return Contact.objects.get(mobile=e164), False
    timeline_record(contact=contact, kind="contact.created", title="Contact created from an inbound message")
    return contact, True
