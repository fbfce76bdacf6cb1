"""Who can be texted: the one read that every sender of messages uses (enqueue, broadcasts, the API's send).

A contact can be texted on a channel when it has an address for that channel, no active Do Not Contact for it, and
its address is not suppressed (an opt-out kept for the number itself, ``contacts.suppression``; consent, where a
channel requires it, belongs here too). The read comes in the three shapes its callers need, all
from the same definitions: a reason for one contact, ORM expressions for counting, and the SQL conditions that the
set-based INSERT … SELECTs put in their WHERE.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Exists, OuterRef, Q

from .models import Channel, Contact, DoNotContact, Suppression

# The contact's column holding its address on each channel.
ADDRESS_FIELD: dict[str, str] = {Channel.SMS: "mobile"}
CHANNEL_LABEL: dict[str, str] = {Channel.SMS: "SMS"}


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


def textable(channel: str = Channel.SMS) -> Q:
    """The contacts that can be texted on ``channel`` (a filter for ``Contact`` querysets)."""
    return ~without_address(channel) & ~Q(dnc_active_for(channel)) & ~Q(suppressed_for(channel))


def textable_sql(*, alias: str = "c", channel: str = Channel.SMS, after: str = "") -> str:
    """The same conditions as SQL for a WHERE over ``Contact`` rows aliased ``alias`` (joined with AND, no leading
    AND). ``after`` is a placeholder (``%(after)s``) bounding the Do Not Contact subquery to contacts past a keyset
    position: PostgreSQL does not carry ``c.id > after`` across ``d.contact_id = c.id`` by itself."""
    field = Contact._meta.get_field(address_field(channel))
    assert isinstance(field, models.Field)
    column, dnc, suppression = field.column, DoNotContact._meta.db_table, Suppression._meta.db_table
    bound = f" AND d.contact_id > {after}" if after else ""
    # The channel is a key of ADDRESS_FIELD (address_field refuses others), never user input: the planner sees a
    # constant, as the partial indexes need.
    return f"""{alias}.{column} IS NOT NULL AND {alias}.{column} <> ''
          AND NOT EXISTS (
            SELECT 1 FROM {dnc} d
            WHERE d.contact_id = {alias}.id{bound} AND d.channel = '{channel}' AND d.lifted_at IS NULL)
          AND NOT EXISTS (
            SELECT 1 FROM {suppression} s
            WHERE s.channel = '{channel}' AND s.address = {alias}.{column} AND s.lifted_at IS NULL)"""  # noqa: S608


def contact_unreachable_reason(*, contact: Contact, channel: str = Channel.SMS) -> str:
    """Why ``contact`` cannot be texted on ``channel`` ("has no mobile number"), or "" when it can."""
    field = address_field(channel)
    if not getattr(contact, field):
        return f"has no {field} number" if field == "mobile" else f"has no {field}"
    if DoNotContact.objects.filter(contact=contact, channel=channel, lifted_at__isnull=True).exists():
        return f"is Do Not Contact for {CHANNEL_LABEL[channel]}"
    if Suppression.objects.filter(
        channel=channel, address=str(getattr(contact, field)), lifted_at__isnull=True
    ).exists():
        return f"has a number that opted out of {CHANNEL_LABEL[channel]}"
    return ""


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
