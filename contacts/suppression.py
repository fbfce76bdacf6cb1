"""Suppression by address: an opt-out kept for the number (and channel) itself, not for a contact row.

Do Not Contact stays the contact's view of an opt-out (the API's ``dnc_sms``, segment filters, campaign conditions).
Every Do Not Contact mark made through ``contacts.services`` suppresses the contact's address too, set-based, and
lifting it lifts the address's suppression; so the opt-out outlives the contact's deletion, a merge or a re-import.
The other way, a contact that gets a suppressed address (created again, imported, edited) is marked Do Not Contact at
once by ``contacts_apply_suppressions``, with a timeline entry saying why. What may be sent is decided from both
(``contacts.selectors``), so nothing goes to a suppressed address even before its new contact is marked.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import connection, models
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from .bounces import address_failures_reset_sql
from .models import PROTECTED_REASON, PROTECTED_SOURCES, Channel, Contact, DoNotContact, Suppression, protected_q
from .selectors import ADDRESS_FIELD

# Why a contact is marked Do Not Contact on getting an address that was suppressed before: the timeline says it.
INHERITED_COMMENT = "This number opted out before ({source}); the opt-out is kept for the number itself."


def _column(channel: str) -> str | None:
    """The contact's column holding its address on ``channel``, None for a channel without one."""
    field_name = ADDRESS_FIELD.get(channel)
    if field_name is None:
        return None
    field = Contact._meta.get_field(field_name)
    assert isinstance(field, models.Field)
    return str(field.column)


def suppression_active(*, channel: str = Channel.SMS) -> QuerySet[Suppression]:
    return Suppression.objects.filter(channel=channel, lifted_at__isnull=True)


def address_suppression(*, address: str | None, channel: str = Channel.SMS) -> Suppression | None:
    """The active suppression of ``address`` on ``channel``, if any."""
    if not address:
        return None
    return suppression_active(channel=channel).filter(address=str(address)).first()


def suppressed_addresses(*, addresses: Iterable[str], channel: str = Channel.SMS) -> set[str]:
    """Which of these addresses are suppressed (one query for a claimed chunk)."""
    wanted = sorted({str(a) for a in addresses if a})
    if not wanted:
        return set()
    return set(suppression_active(channel=channel).filter(address__in=wanted).values_list("address", flat=True))


def suppression_add_sql(*, contacts_sql: str, channel: str) -> tuple[str, int] | None:
    """The INSERT suppressing the addresses of a set of contacts (``contacts_sql`` selects their ids) and where its
    own parameters go: reason, source, comment, created_at, then those of ``contacts_sql``. None for a channel
    without addresses. An address suppressed already keeps its entry (``ON CONFLICT DO NOTHING`` against the partial
    unique index, so concurrent marks make one)."""
    column = _column(channel)
    if column is None:
        return None
    table, contacts = Suppression._meta.db_table, Contact._meta.db_table
    sql = (
        f"INSERT INTO {table} (channel, address, reason, source, comment, created_at, lifted_by, lifted_comment) "  # noqa: S608
        f"SELECT DISTINCT '{channel}', c.{column}, %s, %s, %s, %s, '', '' FROM {contacts} c "
        f"WHERE c.id IN ({contacts_sql}) AND c.{column} IS NOT NULL AND c.{column} <> '' "
        "ON CONFLICT (channel, address) WHERE lifted_at IS NULL DO NOTHING"
    )
    return sql, 4


def suppression_add_for(
    *, contacts_sql: str, params: Iterable[Any], channel: str, reason: str, source: str, comment: str
) -> int:
    """Suppress the addresses of a set of contacts; returns how many addresses were newly suppressed."""
    built = suppression_add_sql(contacts_sql=contacts_sql, channel=channel)
    if built is None:
        return 0
    sql, _ = built
    stamp = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(sql, [reason, source, comment, stamp, *params])
        return max(cursor.rowcount, 0)


def suppression_lift_for(
    *,
    contacts_sql: str,
    params: Iterable[Any],
    channel: str,
    source: str,
    comment: str,
    only_sources: set[str] | None = None,
) -> int:
    """Lift the active suppression of a set of contacts' addresses (history stays); returns how many were lifted.
    ``only_sources`` limits it, as for Do Not Contact (an opt-in keyword lifts only an opt-out a keyword made). A
    protected opt-out (the person's STOP, ``models.protected_q``) is lifted only by the person's own keyword
    (``source`` "keyword"). A lifted address's count of permanent failures starts again from zero (``bounces``)."""
    column = _column(channel)
    if column is None:
        return 0
    only, only_params = "", []
    if only_sources is not None:
        only = f" AND source IN ({', '.join(['%s'] * len(only_sources))})" if only_sources else " AND false"
        only_params = sorted(only_sources)
    if source != DoNotContact.Source.KEYWORD:
        only += f" AND NOT (reason = %s AND source IN ({', '.join(['%s'] * len(PROTECTED_SOURCES))}))"
        only_params += [PROTECTED_REASON, *PROTECTED_SOURCES]
    addresses = f"SELECT c.{column} FROM {Contact._meta.db_table} c WHERE c.id IN ({contacts_sql})"  # noqa: S608
    stamp = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Suppression._meta.db_table} SET lifted_at = %s, lifted_by = %s, lifted_comment = %s "  # noqa: S608
            f"WHERE channel = %s AND lifted_at IS NULL{only} AND address IN ({addresses})",
            [stamp, source, comment, channel, *only_params, *params],
        )
        lifted = max(cursor.rowcount, 0)
        if lifted:
            cursor.execute(address_failures_reset_sql(channel=channel, addresses_sql=addresses), list(params))
        return lifted


def address_opt_out_protected(*, address: str | None, channel: str = Channel.SMS) -> bool:
    """Whether the address's active suppression is the person's own opt-out (see ``models.protected_q``)."""
    if not address:
        return False
    return suppression_active(channel=channel).filter(protected_q(), address=str(address)).exists()


def suppression_add(
    *, address: str, reason: str, source: str, channel: str = Channel.SMS, comment: str = ""
) -> tuple[Suppression, bool]:
    """Suppress one address whether or not a contact has it now (a bounce, an opt-out from a number nobody owns).
    Returns (entry, created); an active entry is kept as it is."""
    stamp = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Suppression._meta.db_table} (channel, address, reason, source, comment, created_at, "  # noqa: S608
            "lifted_by, lifted_comment) VALUES (%s, %s, %s, %s, %s, %s, '', '') "
            "ON CONFLICT (channel, address) WHERE lifted_at IS NULL DO NOTHING",
            [channel, address, reason, source, comment, stamp],
        )
        created = cursor.rowcount > 0
    entry = suppression_active(channel=channel).get(address=address)
    return entry, created


def contacts_apply_suppressions(*, contacts: QuerySet[Contact], channel: str = Channel.SMS) -> int:
    """Mark Do Not Contact, at once, the contacts of the set whose address is suppressed and who are not marked yet,
    each with a timeline entry saying why (the number opted out before). Set-based: one ``_dnc_mark`` per kind of
    suppression found (reason, source), a handful at most. Returns how many were marked."""
    from .services import dnc_add_matching  # services import this module for the other direction

    field = ADDRESS_FIELD.get(channel)
    if field is None:
        return 0
    suppressed = suppression_active(channel=channel).filter(address=OuterRef(field))
    dnc = DoNotContact.objects.filter(contact_id=OuterRef("pk"), channel=channel, lifted_at__isnull=True)
    fresh = contacts.order_by().filter(Exists(suppressed)).exclude(Exists(dnc))
    kinds = (
        suppression_active(channel=channel)
        .filter(address__in=fresh.values(field))
        .order_by()
        .values_list("reason", "source")
        .distinct()
    )
    marked = 0
    for reason, source in list(kinds):
        of_kind = suppression_active(channel=channel).filter(address=OuterRef(field), reason=reason, source=source)
        comment = INHERITED_COMMENT.format(source=DoNotContact.Source(source).label.lower())
        marked += dnc_add_matching(
            contacts=fresh.filter(Exists(of_kind)), reason=reason, source=source, channel=channel, comment=comment
        )
    return marked


def contact_saved(sender: type[Contact], instance: Contact, created: bool, **kwargs: Any) -> None:
    """``post_save`` of a contact (the API, forms, an inbound reply's new contact): a contact that has just got a
    suppressed address is marked Do Not Contact at once. Set-based writers (imports) call
    ``contacts_apply_suppressions`` themselves."""
    update_fields = kwargs.get("update_fields")
    if kwargs.get("raw") or not instance.mobile:
        return
    if not created and update_fields is not None and "mobile" not in update_fields:
        return
    contacts_apply_suppressions(contacts=Contact.objects.filter(pk=instance.pk))
