"""Writes on contacts, named ``<entity>_<action>``. Other apps call these, never the models' writes directly."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from django.core.exceptions import EmptyResultSet
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.db.models.functions import Greatest
from django.utils import timezone

from smsapp.core.locks import job_lock

from .filters import FilterError, cycle_message, filters_to_q, segment_cycle, segments_in_loops
from .models import Channel, Contact, DoNotContact, Segment, SegmentMembership, Suppression, TimelineEvent, protected_q
from .phones import InvalidPhoneNumber, looks_like_phone, phone_to_e164, region_of
from .selectors import ADDRESS_FIELD, CHANNEL_LABEL
from .signals import dnc_changed
from .suppression import address_opt_out_protected, suppression_add_for, suppression_lift_for

logger = logging.getLogger(__name__)
M = TypeVar("M", bound="models.Model")


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


def contacts_with_dnc_flag(
    queryset: QuerySet[Contact], *, channel: str = Channel.SMS, id_below: int | None = None, id_above: int | None = None
) -> QuerySet[Contact]:
    """Annotate ``is_dnc`` in SQL (one subquery, no query per row).

    ``id_below`` / ``id_above``: the caller only wants contacts in that id range (a keyset page); see
    ``contacts_in_segment``.
    """
    entries = _id_range(dnc_active(channel=channel).filter(contact_id=OuterRef("pk")), id_below, id_above)
    return queryset.annotate(is_dnc=Exists(entries))


def _announce_dnc(contact_ids: list[int], *, channel: str, active: bool, source: str) -> None:
    if contact_ids:
        transaction.on_commit(
            lambda: dnc_changed.send(
                sender=DoNotContact, contact_ids=contact_ids, channel=channel, active=active, source=source
            )
        )


def _id_range(rows: QuerySet[M], id_below: int | None, id_above: int | None) -> QuerySet[M]:
    """``rows`` (of a table with ``contact_id``) narrowed to a keyset page's contact id range."""
    if id_below is not None:
        rows = rows.filter(contact_id__lt=id_below)
    if id_above is not None:
        rows = rows.filter(contact_id__gt=id_above)
    return rows


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
    _suppress_addresses_of([contact.pk], channel=channel, reason=reason, source=source, comment=comment)
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
    _announce_dnc([contact.pk], channel=channel, active=True, source=source)
    return entry, True


ContactSet = QuerySet[Contact] | Iterable[int]


def _suppress_addresses_of(contacts: ContactSet, *, channel: str, reason: str, source: str, comment: str) -> None:
    """Every Do Not Contact mark suppresses the contact's address too (``contacts.suppression``): the opt-out then
    outlives the contact row. Addresses suppressed already keep their entry."""
    subquery = _contact_ids_sql(contacts)
    if subquery is not None:
        sql, params = subquery
        suppression_add_for(
            contacts_sql=sql, params=params, channel=channel, reason=reason, source=source, comment=comment
        )


def _lift_suppressions_of(
    contacts: ContactSet, *, channel: str, source: str, comment: str, only_sources: set[str] | None = None
) -> None:
    """Lifting a contact's Do Not Contact lifts its address's suppression (with the same limits)."""
    subquery = _contact_ids_sql(contacts)
    if subquery is not None:
        sql, params = subquery
        suppression_lift_for(
            contacts_sql=sql, params=params, channel=channel, source=source, comment=comment, only_sources=only_sources
        )


def _contacts_of(contacts: ContactSet) -> QuerySet[Contact] | None:
    """A set of contacts as a queryset; None for an empty list of ids.

    A queryset stays in the database (a campaign's batch, an import's staging table); a list of ids is filtered
    through the contacts table, so ids of contacts that do not exist are ignored.
    """
    if isinstance(contacts, QuerySet):
        return contacts
    ids = sorted({int(i) for i in contacts})
    return Contact.objects.filter(pk__in=ids) if ids else None


def _contact_ids_sql(contacts: ContactSet) -> tuple[str, tuple[Any, ...]] | None:
    """``SELECT id`` of a set of contacts, to embed in an ``INSERT … SELECT``; None when it is empty for sure."""
    queryset = _contacts_of(contacts)
    if queryset is None:
        return None
    try:
        sql, params = queryset.order_by().values("id").query.sql_with_params()
    except EmptyResultSet:  # a queryset that can match nothing (``pk__in=[]``) has no SQL
        return None
    return sql, tuple(params)


def _json_param() -> str:
    """A JSON value as a raw-SQL parameter: PostgreSQL needs the cast to jsonb, SQLite stores the text."""
    return "CAST(%s AS jsonb)" if connection.vendor == "postgresql" else "%s"


def _dnc_mark_sql(
    *, contacts_sql: str, channel: str, reason: str, source: str, comment: str
) -> tuple[str, str, list[Any], list[Any]]:
    """The Do Not Contact insert and its timeline insert for a set of contacts (see ``dnc_add_many``)."""
    table, timeline = DoNotContact._meta.db_table, TimelineEvent._meta.db_table
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    title = f"Do Not Contact ({channel.upper()}): {DoNotContact.Reason(reason).label}"
    detail = json.dumps({"channel": channel, "reason": reason, "source": source, "comment": comment})
    insert = (
        f"INSERT INTO {table} (contact_id, channel, reason, source, comment, created_at, lifted_by, lifted_comment) "  # noqa: S608
        f"SELECT c.id, %s, %s, %s, %s, %s, '', '' FROM ({contacts_sql}) c WHERE true "
        "ON CONFLICT (contact_id, channel) WHERE lifted_at IS NULL DO NOTHING"
    )
    record = (
        f"INSERT INTO {timeline} (contact_id, kind, title, detail, occurred_at, created_at) "  # noqa: S608
        f"SELECT marked.contact_id, 'dnc.added', %s, {_json_param()}, %s, %s FROM marked"
    )
    return insert, record, [channel, reason, source, comment, now], [title, detail, now, now]


def _dnc_mark(
    *, contacts: ContactSet, reason: str, source: str, channel: str, comment: str, returning: bool
) -> list[int] | int:
    """Mark a set of contacts Do Not Contact; the ids newly marked (``returning``) or how many.

    ``INSERT … SELECT … ON CONFLICT DO NOTHING`` against the partial unique index decides who is newly marked, so
    concurrent calls never make two active entries. On PostgreSQL the timeline entries are written by the same
    statement from what the insert returned (a data-modifying CTE), so each new entry gets exactly one even when
    calls race. SQLite has no such CTE, but it runs one writing transaction at a time: the entries are written
    first, for exactly those not marked yet, then the marks.
    """
    queryset = _contacts_of(contacts)
    subquery = _contact_ids_sql(contacts)
    if queryset is None or subquery is None:
        return [] if returning else 0
    contacts_sql, contacts_params = subquery  # the same set, as SQL for the INSERT … SELECT
    insert, record, insert_params, record_params = _dnc_mark_sql(
        contacts_sql=contacts_sql, channel=channel, reason=reason, source=source, comment=comment
    )
    with transaction.atomic(), connection.cursor() as cursor:
        suppression_add_for(
            contacts_sql=contacts_sql,
            params=contacts_params,
            channel=channel,
            reason=reason,
            source=source,
            comment=comment,
        )
        if connection.vendor == "postgresql":
            tail = " RETURNING contact_id" if returning else ""
            cursor.execute(
                f"WITH marked AS ({insert} RETURNING contact_id) {record}{tail}",
                [*insert_params, *contacts_params, *record_params],
            )
            if not returning:
                return max(cursor.rowcount, 0)
            return sorted(int(row[0]) for row in cursor.fetchall())
        active = dnc_active(channel=channel).filter(contact_id=OuterRef("pk"))
        fresh = queryset.exclude(Exists(active))
        fresh_sql, fresh_params = fresh.order_by().values("id").query.sql_with_params()
        ids: list[int] = []
        if returning:
            cursor.execute(fresh_sql, fresh_params)
            ids = sorted(int(row[0]) for row in cursor.fetchall())
        cursor.execute(
            f"WITH marked AS (SELECT f.id AS contact_id FROM ({fresh_sql}) f) {record}",  # noqa: S608 - SQL built here
            [*fresh_params, *record_params],
        )
        count = max(cursor.rowcount, 0)
        cursor.execute(insert, [*insert_params, *contacts_params])
        return ids if returning else count


def dnc_add_many(
    *, contact_ids: Iterable[int], reason: str, source: str, channel: str = Channel.SMS, comment: str = ""
) -> list[int]:
    """Mark many contacts Do Not Contact in one statement; returns the ids newly marked (already-marked contacts keep
    their entry), each with exactly one timeline entry. See ``_dnc_mark``."""
    marked = _dnc_mark(
        contacts=contact_ids, reason=reason, source=source, channel=channel, comment=comment, returning=True
    )
    assert isinstance(marked, list)
    _announce_dnc(marked, channel=channel, active=True, source=source)
    return marked


def dnc_add_matching(
    *,
    contacts: QuerySet[Contact],
    reason: str,
    source: str,
    channel: str = Channel.SMS,
    comment: str = "",
    announce: bool = False,
) -> int:
    """``dnc_add_many`` for a set that stays in the database (a campaign batch, an import): returns how many.

    ``announce``: send ``dnc_changed`` for those newly marked (a campaign's action is news to the apps above; an
    import's column is history, and a million ids read back would cost the import its speed)."""
    marked = _dnc_mark(
        contacts=contacts, reason=reason, source=source, channel=channel, comment=comment, returning=announce
    )
    if isinstance(marked, list):
        _announce_dnc(marked, channel=channel, active=True, source=source)
        return len(marked)
    return marked


class OptOutProtected(Exception):
    """A lift of the person's own opt-out (STOP) by anyone else: refused, with the words to show."""

    def __init__(self, contact: Contact) -> None:
        self.contact = contact
        super().__init__(
            "This number opted out itself (it replied STOP, or the carrier reported its STOP): nobody can lift that "
            "opt-out, not a marketer, an admin, the API, an import or a campaign. It can receive texts again only "
            "when the person texts START."
        )


def contact_opt_out_protected(*, contact: Contact, channel: str = Channel.SMS) -> bool:
    """Whether the contact's active Do Not Contact, or its address's suppression, is the person's own opt-out."""
    if dnc_active(channel=channel).filter(protected_q(), contact=contact).exists():
        return True
    field = ADDRESS_FIELD.get(channel)
    return bool(field) and address_opt_out_protected(address=getattr(contact, field or "", None), channel=channel)


def _dnc_lift(*, contacts: ContactSet, source: str, channel: str, comment: str, returning: bool) -> list[int] | int:
    """Lift the active Do Not Contact of a set of contacts (history stays); the ids lifted (``returning``) or how
    many. As ``_dnc_mark``: one statement with its timeline entries on PostgreSQL, entries then update on SQLite.
    Protected opt-outs (the person's STOP) stay, unless the person's own keyword lifts them (``source`` "keyword");
    so do the marks of contacts whose address keeps such an opt-out."""
    queryset = _contacts_of(contacts)
    if queryset is None:
        return [] if returning else 0
    entries = dnc_active(channel=channel).filter(contact_id__in=queryset.order_by().values("id"))
    if source != DoNotContact.Source.KEYWORD:
        entries = entries.exclude(protected_q())
        field = ADDRESS_FIELD.get(channel)
        if field is not None:
            kept = Suppression.objects.filter(
                protected_q(), channel=channel, lifted_at__isnull=True, address=OuterRef(f"contact__{field}")
            )
            entries = entries.exclude(Exists(kept))
    try:
        entries_sql, entries_params = entries.order_by().values("id").query.sql_with_params()
    except EmptyResultSet:
        return [] if returning else 0
    stamp = connection.ops.adapt_datetimefield_value(timezone.now())
    title = f"Do Not Contact ({channel.upper()}) lifted"
    detail = json.dumps({"channel": channel, "source": source, "comment": comment})
    update = (
        f"UPDATE {DoNotContact._meta.db_table} SET lifted_at = %s, lifted_by = %s, lifted_comment = %s "  # noqa: S608
        f"WHERE id IN ({entries_sql})"
    )
    record = (
        f"INSERT INTO {TimelineEvent._meta.db_table} (contact_id, kind, title, detail, occurred_at, created_at) "  # noqa: S608
        f"SELECT lifted.contact_id, 'dnc.removed', %s, {_json_param()}, %s, %s FROM lifted"
    )
    update_params, record_params = [stamp, source, comment, *entries_params], [title, detail, stamp, stamp]
    with transaction.atomic(), connection.cursor() as cursor:
        _lift_suppressions_of(queryset, channel=channel, source=source, comment=comment)
        if connection.vendor == "postgresql":
            tail = " RETURNING contact_id" if returning else ""
            cursor.execute(
                f"WITH lifted AS ({update} RETURNING contact_id) {record}{tail}", [*update_params, *record_params]
            )
            return sorted(int(row[0]) for row in cursor.fetchall()) if returning else max(cursor.rowcount, 0)
        ids_sql, ids_params = entries.order_by().values("contact_id").query.sql_with_params()
        ids: list[int] = []
        if returning:
            cursor.execute(ids_sql, ids_params)
            ids = sorted(int(row[0]) for row in cursor.fetchall())
        cursor.execute(f"WITH lifted AS ({ids_sql}) {record}", [*ids_params, *record_params])
        cursor.execute(update, update_params)
        return ids if returning else max(cursor.rowcount, 0)


def dnc_remove_many(
    *, contact_ids: Iterable[int], source: str, channel: str = Channel.SMS, comment: str = ""
) -> list[int]:
    """Lift the active Do Not Contact of many contacts in one statement (history stays); returns the ids lifted."""
    lifted = _dnc_lift(contacts=contact_ids, source=source, channel=channel, comment=comment, returning=True)
    assert isinstance(lifted, list)
    _announce_dnc(lifted, channel=channel, active=False, source=source)
    return lifted


def dnc_remove_matching(
    *, contacts: QuerySet[Contact], source: str, channel: str = Channel.SMS, comment: str = "", announce: bool = False
) -> int:
    """``dnc_remove_many`` for a set that stays in the database (a campaign batch): returns how many were lifted.
    ``announce`` as for ``dnc_add_matching``."""
    lifted = _dnc_lift(contacts=contacts, source=source, channel=channel, comment=comment, returning=announce)
    if isinstance(lifted, list):
        _announce_dnc(lifted, channel=channel, active=False, source=source)
        return len(lifted)
    return lifted


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

    ``only_sources`` restricts what may be lifted: an opt-in keyword lifts only an opt-out a keyword made. Anyone but
    the person (``source`` other than "keyword") lifting the person's own opt-out gets ``OptOutProtected``.
    """
    if source != DoNotContact.Source.KEYWORD and contact_opt_out_protected(contact=contact, channel=channel):
        raise OptOutProtected(contact)
    entries = dnc_active(channel=channel).filter(contact=contact).select_for_update()
    if only_reasons is not None:
        entries = entries.filter(reason__in=only_reasons)
    if only_sources is not None:
        entries = entries.filter(source__in=only_sources)
    now = timezone.now()
    lifted = entries.update(lifted_at=now, lifted_by=source, lifted_comment=comment)
    if lifted:
        _lift_suppressions_of([contact.pk], channel=channel, source=source, comment=comment, only_sources=only_sources)
        timeline_record(
            contact=contact,
            kind="dnc.removed",
            title=f"Do Not Contact ({channel.upper()}) lifted",
            detail={"channel": channel, "source": source, "comment": comment},
        )
        _announce_dnc([contact.pk], channel=channel, active=False, source=source)
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


def contact_get_or_create_by_address(
    *, channel: str, address: str, country: str = "", name: str = ""
) -> tuple[Contact, bool]:
    """The contact who owns this address on ``channel`` (a mobile, a WhatsApp number, a Messenger ID), created if
    unknown, with ``name`` (a chat app's profile name) as its first name. A WhatsApp number nobody has yet is learnt
    by the contact whose mobile it is. Safe under concurrency (each address column is unique).

    Raises ``InvalidPhoneNumber`` for an SMS or WhatsApp address that is not a phone number.
    """
    if channel == Channel.SMS:
        return contact_get_or_create_by_mobile(mobile=address, country=country)
    if channel == Channel.WHATSAPP:
        address = phone_to_e164(address, region=country or None)
    field = ADDRESS_FIELD[channel]
    contact = Contact.objects.filter(**{field: address}).first()
    if contact:
        return contact, False
    if channel == Channel.WHATSAPP and Contact.objects.filter(mobile=address, whatsapp__isnull=True).update(
        whatsapp=address, updated_at=timezone.now()
    ):
        return Contact.objects.get(whatsapp=address), False
    values: dict[str, Any] = {field: address, "first_name": name.strip()[:100]}
    if channel == Channel.WHATSAPP:
        values["country"] = country.upper() or region_of(address)
    try:
        with transaction.atomic():
            contact = Contact.objects.create(**values)
    except IntegrityError:
        return Contact.objects.get(**{field: address}), False
    label = CHANNEL_LABEL[channel]
    timeline_record(contact=contact, kind="contact.created", title=f"Contact created from an inbound {label} message")
    return contact, True


def contact_whatsapp_heard(*, contact_id: int, at: dt.datetime) -> None:
    """The contact wrote on WhatsApp at ``at``: its 24-hour window runs from the latest such message."""
    Contact.objects.filter(pk=contact_id).filter(
        Q(whatsapp_inbound_at__isnull=True) | Q(whatsapp_inbound_at__lt=at)
    ).update(whatsapp_inbound_at=at)


def contact_search(*, queryset: QuerySet[Contact], text: str) -> QuerySet[Contact]:
    """Contacts whose name or email contains ``text``, or whose number is ``text`` in any format (or contains it)."""
    text = text.strip()
    if not text:
        return queryset
    if looks_like_phone(text):
        try:
            return queryset.filter(mobile=phone_to_e164(text))
        except InvalidPhoneNumber:
            # A partial number: match the digits inside the stored E.164 form.
            return queryset.filter(mobile__contains="".join(ch for ch in text if ch.isdigit()))
    q = Q(email__icontains=text) | Q(first_name__icontains=text) | Q(last_name__icontains=text)
    first, _, last = text.partition(" ")
    if last:
        q |= Q(first_name__icontains=first, last_name__icontains=last.strip())
    return queryset.filter(q)


def contacts_in_segment(
    *, queryset: QuerySet[Contact], segment_id: int, id_below: int | None = None, id_above: int | None = None
) -> QuerySet[Contact]:
    """Narrow ``queryset`` to a segment's members (manually removed ones excluded), as one semi-join.

    ``id_below`` / ``id_above``: the caller only wants contacts in that id range (a keyset page). The bound is
    repeated inside the subquery because PostgreSQL does not carry ``id < N`` across ``contact_id = id``: without it
    the merge join reads the membership index from the newest contact down, and a page deep in the table costs all
    the pages before it.
    """
    member = SegmentMembership.objects.filter(segment_id=segment_id, manually_removed=False, contact_id=OuterRef("pk"))
    return queryset.filter(Exists(_id_range(member, id_below, id_above)))


# Segments


@transaction.atomic
def segment_create(*, name: str, description: str = "", kind: str, filters: dict[str, Any] | None = None) -> Segment:
    """A new segment (filters already validated by ``filters_clean``), its membership built at once."""
    segment = Segment.objects.create(
        name=name, description=description, kind=kind, filters=filters if kind == Segment.Kind.FILTER else {}
    )
    segment_rebuild(segment=segment)
    segment.refresh_from_db()
    return segment


@transaction.atomic
def segment_save(
    *, segment: Segment | None, name: str, description: str, kind: str, filters: dict[str, Any]
) -> tuple[Segment, dict[str, int]]:
    """Create or change a segment from the editor (filters already cleaned) and rebuild it; the segment and counts.

    Raises ``FilterError`` when the rules would make a loop through other segments. The filter-based segments are
    locked first, so two saves that would close a loop together (A → B and B → A at once) are checked one after
    the other and the second is refused.
    """
    list(Segment.objects.select_for_update().filter(kind=Segment.Kind.FILTER).values_list("pk", flat=True))
    segment = segment or Segment()
    if segment.pk and kind == Segment.Kind.FILTER:
        chain = segment_cycle(segment_id=segment.pk, filters=filters)
        if chain:
            raise FilterError([cycle_message(chain=chain, name=name)])
    segment.name, segment.description, segment.kind = name, description, kind
    segment.filters = filters if kind == Segment.Kind.FILTER else {}
    segment.save()
    return segment, segment_rebuild(segment=segment)


class SegmentInUse(Exception):
    """The segment is named in other segments' filters: deleting it would leave their rules pointing at nothing."""

    def __init__(self, segment: Segment, referrers: list[Segment]) -> None:
        self.segment = segment
        self.referrers = referrers
        names = ", ".join(f"“{s.name}” ({s.pk})" for s in referrers)
        super().__init__(
            f"Used in the filters of {names}: remove those rules (or those segments) first, then delete it."
        )


@transaction.atomic
def segment_delete(*, segment: Segment) -> None:
    """Delete a segment, or raise ``SegmentInUse`` naming the segments whose filters use it. Its memberships go with
    it; text messages and campaigns that list it simply no longer do."""
    list(Segment.objects.select_for_update().filter(kind=Segment.Kind.FILTER).values_list("pk", flat=True))
    referrers = segment_referrers(segment=segment)
    if referrers:
        raise SegmentInUse(segment, referrers)
    segment.delete()


def segment_referrers(*, segment: Segment) -> list[Segment]:
    """Filter-based segments whose rules name this segment (deleting it would break their filters)."""
    key = str(segment.pk)
    return [
        other
        for other in Segment.objects.filter(kind=Segment.Kind.FILTER).exclude(pk=segment.pk)
        if any(
            rule.get("field") == "segment" and str(rule.get("value")) == key
            for rule in (other.filters or {}).get("rules") or []
            if isinstance(rule, dict)
        )
    ]


def segment_member_ids(segment_ids: Iterable[int]) -> QuerySet[Contact, int]:
    """Ids of the contacts in any of these segments (manually removed ones excluded), each once.

    A lazy queryset: use it inside ``INSERT … SELECT`` / ``id__in=`` fan-outs, or filter it further on contact fields.
    """
    ids = list(segment_ids)
    member = SegmentMembership.objects.filter(segment_id__in=ids, manually_removed=False, contact_id=OuterRef("pk"))
    return Contact.objects.filter(Exists(member)).order_by().values_list("id", flat=True)


def contact_in_segments_sql(*, segment_ids: list[int], contact_column: str) -> tuple[str, list[Any]]:
    """This app's rule "in any of these segments" (manual removals excluded), as an ``EXISTS`` on one contact id
    column, for set-based callers that decide row by row (a campaign's in-segment condition). An index probe per
    row, whatever the segments' size or the age of their statistics."""
    if not segment_ids:
        return "false", []
    marks = ", ".join(["%s"] * len(segment_ids))
    return (
        f"EXISTS (SELECT 1 FROM {SegmentMembership._meta.db_table} m WHERE m.contact_id = {contact_column} "  # noqa: S608
        f"AND m.segment_id IN ({marks}) AND NOT m.manually_removed)",
        [int(i) for i in segment_ids],
    )


def contact_dnc_sql(*, contact_column: str, channel: str = Channel.SMS) -> tuple[str, list[Any]]:
    """``contact_is_dnc`` as an ``EXISTS`` on one contact id column (see ``contact_in_segments_sql``)."""
    return (
        f"EXISTS (SELECT 1 FROM {DoNotContact._meta.db_table} d WHERE d.contact_id = {contact_column} "  # noqa: S608
        "AND d.channel = %s AND d.lifted_at IS NULL)",
        [channel],
    )


def segment_matching_contacts(*, segment: Segment) -> QuerySet[Contact]:
    """Contacts that a filter-based segment's rules match right now (membership not consulted)."""
    return Contact.objects.filter(filters_to_q(segment.filters, segment_id=segment.pk)).order_by()


def _segment_count(segment: Segment) -> int:
    count = SegmentMembership.objects.filter(segment=segment, manually_removed=False).count()
    Segment.objects.filter(pk=segment.pk).update(member_count=count, rebuilt_at=timezone.now())
    segment.member_count = count
    return count


@transaction.atomic
def segment_rebuild(*, segment: Segment) -> dict[str, int]:
    """Materialise a filter-based segment's membership in two statements; returns added/removed/members counts.

    Additions are one ``INSERT … SELECT … ON CONFLICT DO NOTHING`` (so manually removed rows, which already exist,
    stay out); leavers are one ``DELETE`` that spares manual additions and manual removals. A static segment is only
    recounted. The segment row is locked so two rebuilds of one segment queue up rather than interleave.
    """
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    if segment.kind != Segment.Kind.FILTER:
        return {"added": 0, "removed": 0, "members": _segment_count(segment)}
    if not (segment.filters or {}).get("rules"):
        # No rules match nobody: the SQL for "no rows" cannot be compiled (EmptyResultSet), so only drop leavers.
        removed, _ = SegmentMembership.objects.filter(
            segment=segment, manually_added=False, manually_removed=False
        ).delete()
        return {"added": 0, "removed": removed, "members": _segment_count(segment)}
    matching = segment_matching_contacts(segment=segment).values("id")
    select_sql, select_params = matching.query.sql_with_params()
    table = SegmentMembership._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (segment_id, contact_id, manually_added, manually_removed, added_at) "  # noqa: S608
            f"SELECT %s, matching.id, %s, %s, %s FROM ({select_sql}) AS matching "
            # "WHERE 1 = 1": SQLite needs a WHERE before ON CONFLICT in INSERT … SELECT to parse it.
            "WHERE 1 = 1 ON CONFLICT (segment_id, contact_id) DO NOTHING",
            [segment.pk, False, False, timezone.now(), *select_params],
        )
        added = max(cursor.rowcount, 0)
    still_matching = segment_matching_contacts(segment=segment).filter(pk=OuterRef("contact_id"))
    removed, _ = (
        SegmentMembership.objects.filter(segment=segment, manually_added=False, manually_removed=False)
        .exclude(Exists(still_matching))
        .delete()
    )
    members = _segment_count(segment)
    logger.info("segment %s rebuilt: +%s -%s = %s", segment.pk, added, removed, members)
    return {"added": added, "removed": removed, "members": members}


@contextlib.contextmanager
def _exclusive(name: str) -> Iterator[bool]:
    """A lock held across processes and machines (``smsapp.core.locks.job_lock``); yields False when another holder has
    it (no waiting)."""
    with job_lock(name, ttl=600) as held:
        yield held is not None


def segments_rebuild_all(*, segment_ids: Iterable[int] | None = None) -> dict[int, dict[str, int]] | None:
    """Rebuild every filter-based segment (or those given) and recount static ones; None if a run is in progress."""
    with _exclusive("update_segments") as got:
        if not got:
            logger.info("update_segments: another run holds the lock; skipping")
            return None
        segments = Segment.objects.order_by("pk")
        if segment_ids is not None:
            segments = segments.filter(pk__in=list(segment_ids))
        looped = segments_in_loops()
        results = {}
        for segment in segments:
            if segment.pk in looped:
                # Saved before loops were refused: rebuilding would flip its members at every run. Keep them as
                # they are until someone removes the rule that closes the loop.
                logger.error("segment %s (%s) is in a loop through other segments: not rebuilt", segment.pk, segment)
                continue
            results[segment.pk] = segment_rebuild(segment=segment)
        return results


def _timeline_for(
    *,
    contacts_sql: str,
    params: tuple[Any, ...],
    where: str = "",
    where_params: tuple[Any, ...] = (),
    kind: str,
    title: str,
    detail: dict[str, Any] | None,
) -> int:
    stamp = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TimelineEvent._meta.db_table} (contact_id, kind, title, detail, occurred_at, created_at) "  # noqa: S608
            f"SELECT c.id, %s, %s, {_json_param()}, %s, %s FROM ({contacts_sql}) c{' WHERE ' + where if where else ''}",
            [kind, title[:255], json.dumps(detail or {}), stamp, stamp, *params, *where_params],
        )
        return max(cursor.rowcount, 0)


def timeline_record_matching(
    *, contacts: QuerySet[Contact], kind: str, title: str, detail: dict[str, Any] | None = None
) -> int:
    """One timeline entry, alike but for the contact, for each contact of a set: one ``INSERT … SELECT``, however
    many (``timeline_record_many`` builds a model per entry). Returns how many were written."""
    contacts_sql, params = contacts.order_by().values("id").query.sql_with_params()
    return _timeline_for(contacts_sql=contacts_sql, params=tuple(params), kind=kind, title=title, detail=detail)


def _memberships_insert(
    *, segment: Segment, contacts_sql: str, params: tuple[Any, ...], added: bool, removed: bool
) -> int:
    """A membership row for each contact of the set that has none in this segment (existing rows are kept)."""
    stamp = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {SegmentMembership._meta.db_table} "  # noqa: S608
            "(segment_id, contact_id, manually_added, manually_removed, added_at) "
            f"SELECT %s, c.id, %s, %s, %s FROM ({contacts_sql}) c "
            # "WHERE true": SQLite needs a WHERE before ON CONFLICT in INSERT … SELECT to parse it.
            "WHERE true ON CONFLICT (segment_id, contact_id) DO NOTHING",
            [segment.pk, added, removed, stamp, *params],
        )
        return max(cursor.rowcount, 0)


def _segment_count_by(segment: Segment, delta: int) -> None:
    """Move the member count by the change just made (a rebuild recounts it from the rows): counting a million
    memberships after every batch of a campaign would cost more than the change itself."""
    if delta:
        Segment.objects.filter(pk=segment.pk).update(member_count=Greatest(F("member_count") + delta, 0))
    segment.member_count = Segment.objects.values_list("member_count", flat=True).get(pk=segment.pk)


# A contact's row in a segment, looked up from the contact (``c``) through the unique (segment, contact): one index
# probe per contact of the set. Written as a scalar subquery on purpose: the planner cannot turn it into a join that
# reads the whole segment, which it does when the segment's statistics are older than its rows (a campaign filling
# an empty segment batch after batch made each batch read every row added before it).
_MEMBER_ROW = (
    f"(SELECT m.{{column}} FROM {SegmentMembership._meta.db_table} m "  # noqa: S608
    "WHERE m.segment_id = %s AND m.contact_id = c.id{condition})"
)


_DELETE = "DELETE FROM {table}"
_MARK_REMOVED = "UPDATE {table} SET manually_removed = true, manually_added = false"


def _member(column: str, condition: str = "") -> str:
    return _MEMBER_ROW.format(column=column, condition=f" AND {condition}" if condition else "")


def _members_changed(
    *, segment: Segment, contacts_sql: str, params: tuple[Any, ...], condition: str, change: str
) -> None:
    """UPDATE (or DELETE) the segment's rows of the set's contacts that meet ``condition``, found row by row."""
    rows = f"SELECT {_member('id', condition)} FROM ({contacts_sql}) c"  # noqa: S608 - built from constants
    # On PostgreSQL the ids go through an array: ``id IN (subquery)`` was planned as a hash of the set probed by a
    # scan of the whole membership table, once per campaign batch (each batch slower than the one before); ``= ANY``
    # of an array is an index probe per id, whatever the table's size.
    where = f"id = ANY(ARRAY({rows}))" if connection.vendor == "postgresql" else f"id IN ({rows})"
    with connection.cursor() as cursor:
        cursor.execute(f"{change} WHERE {where}", [segment.pk, *params])


def _counted(*, contacts_sql: str, params: tuple[Any, ...], where: str, where_params: tuple[Any, ...]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM ({contacts_sql}) c WHERE {where}", [*params, *where_params])  # noqa: S608
        return int(cursor.fetchone()[0])


@transaction.atomic
def segment_add_contacts(*, segment: Segment, contact_ids: ContactSet, record: bool = True) -> int:
    """Add contacts by hand (they stay through rebuilds, and a manual removal is undone). Returns how many joined.

    ``contact_ids`` is a list of ids or a queryset that stays in the database (a campaign batch, an import): the
    work is three statements whatever the size. Who joins (no row, or a removal row) gets a timeline entry first,
    then one ``UPDATE`` makes the existing rows manual additions and one ``INSERT … SELECT`` adds the rest.
    """
    subquery = _contact_ids_sql(contact_ids)
    if subquery is None:
        return 0
    contacts_sql, params = subquery
    joining, joining_params = f"{_member('manually_removed')} IS NOT FALSE", (segment.pk,)
    if record:
        joined = _timeline_for(
            contacts_sql=contacts_sql,
            params=params,
            where=joining,
            where_params=joining_params,
            kind="segment.added",
            title=f"Added to segment {segment.name}",
            detail={"segment_id": segment.pk},
        )
    else:
        joined = _counted(contacts_sql=contacts_sql, params=params, where=joining, where_params=joining_params)
    table = SegmentMembership._meta.db_table
    _members_changed(
        segment=segment,
        contacts_sql=contacts_sql,
        params=params,
        condition="(m.manually_removed OR NOT m.manually_added)",
        change=f"UPDATE {table} SET manually_added = true, manually_removed = false",  # noqa: S608
    )
    _memberships_insert(segment=segment, contacts_sql=contacts_sql, params=params, added=True, removed=False)
    _segment_count_by(segment, joined)
    return joined


@transaction.atomic
def segment_remove_contacts(
    *, segment: Segment, contact_ids: ContactSet, record: bool = True, keep_rows: bool = False
) -> int:
    """Remove contacts by hand; returns how many left. In a filter-based segment they are kept out of later rebuilds
    too (a removal row, also for contacts not materialised yet). A static segment's rows are deleted, unless
    ``keep_rows``: a campaign's removal leaves them marked removed, so its log shows who it took out."""
    subquery = _contact_ids_sql(contact_ids)
    if subquery is None:
        return 0
    contacts_sql, params = subquery
    leaving, leaving_params = f"{_member('manually_removed')} IS FALSE", (segment.pk,)
    if record:
        left = _timeline_for(
            contacts_sql=contacts_sql,
            params=params,
            where=leaving,
            where_params=leaving_params,
            kind="segment.removed",
            title=f"Removed from segment {segment.name}",
            detail={"segment_id": segment.pk},
        )
    else:
        left = _counted(contacts_sql=contacts_sql, params=params, where=leaving, where_params=leaving_params)
    table = SegmentMembership._meta.db_table
    delete = segment.kind == Segment.Kind.STATIC and not keep_rows
    _members_changed(
        segment=segment,
        contacts_sql=contacts_sql,
        params=params,
        condition="NOT m.manually_removed",
        change=_DELETE.format(table=table) if delete else _MARK_REMOVED.format(table=table),
    )
    if segment.kind == Segment.Kind.FILTER:
        # Contacts not yet materialised would join at the next rebuild: a removal row keeps them out.
        _memberships_insert(segment=segment, contacts_sql=contacts_sql, params=params, added=False, removed=True)
    _segment_count_by(segment, -left)
    return left


def segment_count_matching(*, filters: Any, segment_id: int | None = None) -> int:
    """How many contacts these (valid) filters match now: the editor's live count."""
    return Contact.objects.filter(filters_to_q(filters, segment_id=segment_id)).count()
