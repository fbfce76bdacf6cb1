"""Who can be texted: the one read that every sender of messages uses (enqueue, broadcasts, the API's send).

A contact can be texted on a channel when it has an address for that channel, no active Do Not Contact for it, and
its address is not suppressed (an opt-out kept for the number itself, ``contacts.suppression``); a marketing
message also needs the address's consent (``contacts.consent``) while ``SMS_MARKETING_REQUIRES_CONSENT`` is on.
The read comes in the three shapes its callers need, all
from the same definitions: a reason for one contact, ORM expressions for counting, and the SQL conditions that the
set-based INSERT … SELECTs put in their WHERE.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from .models import Channel, Consent, ConsentStatus, Contact, DoNotContact, Suppression

# The contact's column holding its address on each channel.
ADDRESS_FIELD: dict[str, str] = {Channel.SMS: "mobile", Channel.WHATSAPP: "whatsapp", Channel.MESSENGER: "messenger_id"}
CHANNEL_LABEL: dict[str, str] = {Channel.SMS: "SMS", Channel.WHATSAPP: "WhatsApp", Channel.MESSENGER: "Messenger"}
# How a marketer reads a missing address ("has no mobile number").
ADDRESS_LABEL: dict[str, str] = {
    Channel.SMS: "mobile number",
    Channel.WHATSAPP: "WhatsApp number",
    Channel.MESSENGER: "Messenger ID (learnt when the contact writes on Messenger)",
}

# WhatsApp's customer service window: a free-form (non-template) message may go only this long after the contact's
# last inbound WhatsApp message; outside it only an approved template may.
WHATSAPP_WINDOW = dt.timedelta(hours=24)
OUTSIDE_WINDOW = (
    "is outside WhatsApp's 24-hour window: the contact has not written on WhatsApp in the last 24 hours, "
    "so only an approved WhatsApp template can be sent to them"
)


def address_field(channel: str = Channel.SMS) -> str:
    return ADDRESS_FIELD[channel]


def without_address(channel: str = Channel.SMS) -> Q:
    """Contacts with no address on ``channel``."""
    field = address_field(channel)
    return Q(**{f"{field}__isnull": True}) | Q(**{field: ""})


def dnc_active_for(channel: str = Channel.SMS, *, contact: OuterRef | None = None) -> Exists:
    """An active Do Not Contact on ``channel`` for the outer query's contact (``OuterRef("pk")`` by default)."""
    return Exists(
        DoNotContact.objects.filter(
            contact_id=contact if contact is not None else OuterRef("pk"), channel=channel, lifted_at__isnull=True
        )
    )


def suppressed_for(channel: str = Channel.SMS) -> Exists:
    """An active suppression of the outer contact's address on ``channel``."""
    return Exists(
        Suppression.objects.filter(channel=channel, address=OuterRef(address_field(channel)), lifted_at__isnull=True)
    )


def needs_window(*, channel: str, template: bool) -> bool:
    """Whether a message must fall inside WhatsApp's 24-hour window (a free-form WhatsApp message)."""
    return channel == Channel.WHATSAPP and not template


def window_opens_after(now: dt.datetime | None = None) -> dt.datetime:
    """A contact whose last inbound WhatsApp message is later than this is inside the window."""
    return (now or timezone.now()) - WHATSAPP_WINDOW


def in_window() -> Q:
    """Contacts inside WhatsApp's 24-hour window now."""
    return Q(whatsapp_inbound_at__gt=window_opens_after())


def in_window_sql(*, alias: str = "c", param: str = "%(window)s") -> str:
    """``in_window`` as SQL over ``Contact`` rows aliased ``alias``; ``param`` is the placeholder of
    ``window_opens_after()``."""
    column = Contact._meta.get_field("whatsapp_inbound_at")
    assert isinstance(column, models.Field)
    return f"{alias}.{column.column} > {param}"


def consent_required(*, marketing: bool) -> bool:
    """Whether a message of this kind needs the recipient's consent (marketing, while the setting is on)."""
    return marketing and bool(getattr(settings, "SMS_MARKETING_REQUIRES_CONSENT", True))


def consented_for(channel: str = Channel.SMS) -> Exists:
    """The outer contact's address is subscribed to marketing on ``channel``."""
    return Exists(
        Consent.objects.filter(
            channel=channel, address=OuterRef(address_field(channel)), status=ConsentStatus.SUBSCRIBED
        )
    )


def textable(channel: str = Channel.SMS, *, marketing: bool = False) -> Q:
    """The contacts that can be texted on ``channel`` (a filter for ``Contact`` querysets); ``marketing``: with a
    marketing message (which needs consent, see ``consent_required``)."""
    can = ~without_address(channel) & ~Q(dnc_active_for(channel)) & ~Q(suppressed_for(channel))
    return can & Q(consented_for(channel)) if consent_required(marketing=marketing) else can


def textable_sql(*, alias: str = "c", channel: str = Channel.SMS, after: str = "", marketing: bool = False) -> str:
    """The same conditions as SQL for a WHERE over ``Contact`` rows aliased ``alias`` (joined with AND, no leading
    AND). ``after`` is a placeholder (``%(after)s``) bounding the Do Not Contact subquery to contacts past a keyset
    position: PostgreSQL does not carry ``c.id > after`` across ``d.contact_id = c.id`` by itself."""
    field = Contact._meta.get_field(address_field(channel))
    assert isinstance(field, models.Field)
    column, dnc, suppression = field.column, DoNotContact._meta.db_table, Suppression._meta.db_table
    bound = f" AND d.contact_id > {after}" if after else ""
    consent = ""
    if consent_required(marketing=marketing):
        consent = f"""
          AND EXISTS (
            SELECT 1 FROM {Consent._meta.db_table} k
            WHERE k.channel = '{channel}' AND k.address = {alias}.{column} AND k.status = 'subscribed')"""  # noqa: S608
    # The channel is a key of ADDRESS_FIELD (address_field refuses others), never user input: the planner sees a
    # constant, as the partial indexes need.
    return f"""{alias}.{column} IS NOT NULL AND {alias}.{column} <> ''
          AND NOT EXISTS (
            SELECT 1 FROM {dnc} d
            WHERE d.contact_id = {alias}.id{bound} AND d.channel = '{channel}' AND d.lifted_at IS NULL)
          AND NOT EXISTS (
            SELECT 1 FROM {suppression} s
            WHERE s.channel = '{channel}' AND s.address = {alias}.{column} AND s.lifted_at IS NULL){consent}"""  # noqa: S608


NO_CONSENT = "has not consented to marketing texts"


def contact_unreachable_reason(*, contact: Contact, channel: str = Channel.SMS, marketing: bool = False) -> str:
    """Why ``contact`` cannot be texted on ``channel`` ("has no mobile number"), or "" when it can; ``marketing``:
    with a marketing message."""
    field = address_field(channel)
    if not getattr(contact, field):
        return f"has no {ADDRESS_LABEL[channel]}"
    if DoNotContact.objects.filter(contact=contact, channel=channel, lifted_at__isnull=True).exists():
        return f"is Do Not Contact for {CHANNEL_LABEL[channel]}"
    if Suppression.objects.filter(
        channel=channel, address=str(getattr(contact, field)), lifted_at__isnull=True
    ).exists():
        address = "number" if channel != Channel.MESSENGER else "Messenger ID"
        return f"has a {address} that opted out of {CHANNEL_LABEL[channel]}"
    if (
        consent_required(marketing=marketing)
        and not Consent.objects.filter(
            channel=channel, address=str(getattr(contact, field)), status=ConsentStatus.SUBSCRIBED
        ).exists()
    ):
        return NO_CONSENT
    return ""


def window_closed_reason(*, contact: Contact, channel: str, template: bool) -> str:
    """``OUTSIDE_WINDOW`` when a free-form WhatsApp message may not go to ``contact`` now, "" otherwise."""
    if not needs_window(channel=channel, template=template):
        return ""
    last = contact.whatsapp_inbound_at
    return "" if last is not None and last > window_opens_after() else OUTSIDE_WINDOW


def in_window_contacts(*, contact_ids: set[int]) -> set[int]:
    """For a claimed chunk: which of these contacts are inside WhatsApp's 24-hour window (one query)."""
    if not contact_ids:
        return set()
    rows = Contact.objects.filter(in_window(), pk__in=sorted(contact_ids))
    return set(rows.values_list("pk", flat=True))


def unreachable_at_claim(
    *, contact_ids: set[int], addresses: set[str], channel: str = Channel.SMS
) -> tuple[set[int], set[str]]:
    """For a claimed chunk: the contacts that are Do Not Contact and the addresses that are suppressed (two queries,
    whatever the chunk's size). A row with either is not sent."""
    dnc = set(
        DoNotContact.objects.filter(contact_id__in=contact_ids, channel=channel, lifted_at__isnull=True).values_list(
            "contact_id", flat=True
        )
    )
    wanted = sorted(a for a in addresses if a)
    suppressed = (
        set(
            Suppression.objects.filter(channel=channel, address__in=wanted, lifted_at__isnull=True).values_list(
                "address", flat=True
            )
        )
        if wanted
        else set()
    )
    return {int(i) for i in dnc if i is not None}, suppressed


def consented_addresses(*, addresses: set[str], channel: str = Channel.SMS) -> set[str]:
    """For a claimed chunk: which of these addresses are subscribed to marketing (one query)."""
    wanted = sorted(a for a in addresses if a)
    if not wanted:
        return set()
    rows = Consent.objects.filter(channel=channel, address__in=wanted, status=ConsentStatus.SUBSCRIBED)
    return set(rows.values_list("address", flat=True))
