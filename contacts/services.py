"""Writes on contacts, named ``<entity>_<action>``. Other apps call these, never the models' writes directly."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from django.db import IntegrityError, connection, models, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from smsapp.locks import job_lock

from .filters import FilterError, cycle_message, filters_to_q, segment_cycle, segments_in_loops
from .models import Channel, Contact, DoNotContact, Segment, SegmentMembership, TimelineEvent
from .phones import InvalidPhoneNumber, looks_like_phone, phone_to_e164, region_of
from .signals import dnc_changed

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


@transaction.atomic
def dnc_add_many(
    *, contact_ids: Iterable[int], reason: str, source: str, channel: str = Channel.SMS, comment: str = ""
) -> list[int]:
    """Mark many contacts Do Not Contact in one statement; returns the ids newly marked (already-marked contacts keep
    their entry). ``INSERT … ON CONFLICT DO NOTHING RETURNING`` against the partial unique index decides, so
    concurrent calls never make two active entries, and each new entry gets exactly one timeline entry."""
    ids = sorted(set(contact_ids))
    if not ids:
        return []
    table = DoNotContact._meta.db_table
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    rows = ", ".join(["(%s, %s, %s, %s, %s, %s, '', '')"] * len(ids))
    params: list[Any] = []
    for contact_id in ids:
        params += [contact_id, channel, reason, source, comment, now]
    sql = (
        f"INSERT INTO {table} (contact_id, channel, reason, source, comment, created_at, lifted_by, lifted_comment) "  # noqa: S608
        f"VALUES {rows} ON CONFLICT (contact_id, channel) WHERE lifted_at IS NULL DO NOTHING RETURNING contact_id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        marked = sorted(int(row[0]) for row in cursor.fetchall())
    title = f"Do Not Contact ({channel.upper()}): {DoNotContact.Reason(reason).label}"
    detail = {"channel": channel, "reason": reason, "source": source, "comment": comment}
    timeline_record_many(
        entries=[TimelineEvent(contact_id=cid, kind="dnc.added", title=title, detail=detail) for cid in marked]
    )
    _announce_dnc(marked, channel=channel, active=True, source=source)
    return marked


@transaction.atomic
def dnc_remove_many(
    *, contact_ids: Iterable[int], source: str, channel: str = Channel.SMS, comment: str = ""
) -> list[int]:
    """Lift the active Do Not Contact of many contacts in one statement (history stays); returns the ids lifted."""
    ids = sorted(set(contact_ids))
    if not ids:
        return []
    entries = dnc_active(channel=channel).filter(contact_id__in=ids)
    lifted = sorted(set(entries.values_list("contact_id", flat=True)))
    entries.filter(contact_id__in=lifted).update(lifted_at=timezone.now(), lifted_by=source, lifted_comment=comment)
    title = f"Do Not Contact ({channel.upper()}) lifted"
    detail = {"channel": channel, "source": source, "comment": comment}
    timeline_record_many(
        entries=[TimelineEvent(contact_id=cid, kind="dnc.removed", title=title, detail=detail) for cid in lifted]
    )
    _announce_dnc(lifted, channel=channel, active=False, source=source)
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
    """A lock held across processes and machines (``smsapp.locks.job_lock``); yields False when another holder has
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


def _ids_list(contact_ids: Iterable[int]) -> list[int]:
    return [int(i) for i in contact_ids]


@transaction.atomic
def segment_add_contacts(*, segment: Segment, contact_ids: Iterable[int], record: bool = True) -> int:
    """Add contacts by hand (they stay through rebuilds, and a manual removal is undone). Returns how many joined."""
    ids = _ids_list(contact_ids)
    existing = SegmentMembership.objects.filter(segment=segment, contact_id__in=ids)
    rejoined = list(existing.filter(manually_removed=True).values_list("contact_id", flat=True))
    existing.update(manually_added=True, manually_removed=False)
    present = set(existing.values_list("contact_id", flat=True))
    valid = set(Contact.objects.filter(pk__in=ids).values_list("pk", flat=True))
    new = [SegmentMembership(segment=segment, contact_id=cid, manually_added=True) for cid in sorted(valid - present)]
    SegmentMembership.objects.bulk_create(new, ignore_conflicts=True, batch_size=1000)
    joined = [m.contact_id for m in new] + rejoined
    if record and joined:
        timeline_record_many(
            entries=[
                TimelineEvent(
                    contact_id=cid,
                    kind="segment.added",
                    title=f"Added to segment {segment.name}",
                    detail={"segment_id": segment.pk},
                )
                for cid in joined
            ]
        )
    _segment_count(segment)
    return len(joined)


@transaction.atomic
def segment_remove_contacts(*, segment: Segment, contact_ids: Iterable[int], record: bool = True) -> int:
    """Remove contacts by hand. In a filter-based segment they are kept out of later rebuilds too."""
    ids = _ids_list(contact_ids)
    members = SegmentMembership.objects.filter(segment=segment, contact_id__in=ids, manually_removed=False)
    left = list(members.values_list("contact_id", flat=True))
    if segment.kind == Segment.Kind.STATIC:
        members.delete()
    else:
        members.update(manually_removed=True, manually_added=False)
        # Contacts not yet materialised would join at the next rebuild: a removal row keeps them out.
        valid = Contact.objects.filter(pk__in=ids).values_list("pk", flat=True)
        SegmentMembership.objects.bulk_create(
            [SegmentMembership(segment=segment, contact_id=cid, manually_removed=True) for cid in valid],
            ignore_conflicts=True,
            batch_size=1000,
        )
    if record and left:
        timeline_record_many(
            entries=[
                TimelineEvent(
                    contact_id=cid,
                    kind="segment.removed",
                    title=f"Removed from segment {segment.name}",
                    detail={"segment_id": segment.pk},
                )
                for cid in left
            ]
        )
    _segment_count(segment)
    return len(left)


def segment_count_matching(*, filters: Any, segment_id: int | None = None) -> int:
    """How many contacts these (valid) filters match now: the editor's live count."""
    return Contact.objects.filter(filters_to_q(filters, segment_id=segment_id)).count()
