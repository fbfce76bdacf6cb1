"""The campaign engine: membership sync, scheduling, claiming and running events in batches, yes/no paths.

Crash safety rests on two things. A log is claimed with a conditional UPDATE (``scheduled -> running``, rows locked
with SKIP LOCKED on PostgreSQL), so two runs never take the same log. An event's effect (outbound rows, segment
changes, Do Not Contact, timeline) and the log's move to ``done`` commit in the same transaction, so a process killed
in between leaves the log ``running`` with no effect; the next run returns it to ``scheduled`` once it is older than
the stale threshold, and it runs exactly once.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from contacts.models import Contact, DoNotContact, Segment, SegmentMembership, TimelineEvent
from contacts.services import dnc_active, dnc_add_many, dnc_remove_many, segment_member_ids
from texts.models import Source
from texts.services import outbound_enqueue

from . import waits
from .models import (
    Campaign,
    CampaignEvent,
    CampaignEventLog,
    CampaignMember,
    EventKind,
    EventType,
    LogStatus,
    Path,
)
from .windows import is_allowed, next_allowed, trigger_at

DECISION_KINDS = (EventKind.REPLIED_TO_TEXT, EventKind.REPLY_CONTAINS_KEYWORD)
CONTACT_FIELDS = ("first_name", "last_name", "email", "mobile", "country", "timezone", "preferred_language")


def stale_after_default() -> dt.timedelta:
    return dt.timedelta(seconds=getattr(settings, "CAMPAIGNS_STALE_RUNNING_SECONDS", 600))


@dataclass
class RunSummary:
    members_added: int = 0
    members_removed: int = 0
    scheduled: int = 0
    executed: int = 0
    failed: int = 0
    waiting: int = 0
    timed_out: int = 0
    deferred: int = 0
    reset: int = 0
    batches: int = 0
    skipped_locked: bool = False
    per_kind: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


# Membership


def _table(model: Any) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _db_now(now: dt.datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(now)


def members_sync(*, campaign: Campaign, now: dt.datetime | None = None) -> tuple[int, int]:
    """Add the source segments' contacts and drop those who left them, in two statements. Returns (added, removed).

    Manual additions stay whatever the segments say; a manual removal is a row that keeps the contact out.
    """
    now = now or timezone.now()
    # Who is in a segment is the contacts app's rule (manual removals excluded): one lazy subquery, reused twice.
    segment_ids = list(campaign.segments.values_list("id", flat=True))
    in_segments = segment_member_ids(segment_ids)
    with transaction.atomic(), connection.cursor() as cursor:
        added = 0
        if segment_ids:  # (an empty IN () cannot be compiled; a campaign of manual additions only adds none)
            members_sql, members_params = in_segments.query.sql_with_params()
            cursor.execute(
                f"""
                INSERT INTO {_table(CampaignMember)} (campaign_id, contact_id, manually_added, manually_removed,
                                                      entry, added_at)
                SELECT %s, s.id, false, false, 1, %s
                FROM ({members_sql}) s
                WHERE true
                ON CONFLICT (campaign_id, contact_id) DO NOTHING
                """,  # noqa: S608 - table names come from model metadata, values are parameters
                [campaign.pk, _db_now(now), *members_params],
            )
            added = max(cursor.rowcount, 0)
        leaving = CampaignMember.objects.filter(
            campaign=campaign, manually_added=False, manually_removed=False
        ).exclude(contact_id__in=in_segments)
        # Their pending events stop: a contact who left the segment leaves the campaign.
        CampaignEventLog.objects.filter(
            campaign=campaign,
            status__in=(LogStatus.SCHEDULED, LogStatus.WAITING),
            contact_id__in=leaving.values("contact_id"),
        ).update(status=LogStatus.SKIPPED, detail="Left the campaign's segments", executed_at=now)
        removed, _ = leaving.delete()
    return added, removed


def member_add(*, campaign: Campaign, contact_ids: Iterable[int]) -> int:
    """Add contacts by hand (also undoes a manual removal, and resumes their pending events)."""
    ids = list(contact_ids)
    CampaignMember.objects.bulk_create(
        [CampaignMember(campaign=campaign, contact_id=cid, manually_added=True) for cid in ids],
        ignore_conflicts=True,
    )
    return CampaignMember.objects.filter(campaign=campaign, contact_id__in=ids).update(
        manually_added=True, manually_removed=False
    )


def member_remove(*, campaign: Campaign, contact_ids: Iterable[int]) -> int:
    """Remove contacts by hand: their pending events are skipped and the segment sync will not add them back."""
    ids = list(contact_ids)
    now = timezone.now()
    with transaction.atomic():
        CampaignMember.objects.bulk_create(
            [CampaignMember(campaign=campaign, contact_id=cid, manually_removed=True) for cid in ids],
            ignore_conflicts=True,
        )
        CampaignEventLog.objects.filter(
            campaign=campaign, contact_id__in=ids, status__in=(LogStatus.SCHEDULED, LogStatus.WAITING)
        ).update(status=LogStatus.SKIPPED, detail="Removed from the campaign by hand", executed_at=now)
        return CampaignMember.objects.filter(campaign=campaign, contact_id__in=ids).update(
            manually_removed=True, manually_added=False
        )


# Scheduling


def _distinct_timezones(campaign: Campaign) -> list[str]:
    return list(
        Contact.objects.filter(campaign_memberships__campaign=campaign, campaign_memberships__manually_removed=False)
        .values_list("timezone", flat=True)
        .distinct()
    )


def roots_schedule(*, campaign: Campaign, now: dt.datetime | None = None) -> int:
    """Schedule the root events for members who do not have them yet: one INSERT ... SELECT per root event (and
    per contact timezone when the event has a window, since the trigger time then depends on it)."""
    now = now or timezone.now()
    total = 0
    roots = list(campaign.events.filter(parent__isnull=True))
    for event in roots:
        groups: list[tuple[str | None, dt.datetime]]
        if event.has_window:
            groups = [(tz, trigger_at(event=event, now=now, tz=tz)) for tz in _distinct_timezones(campaign)]
        else:
            groups = [(None, trigger_at(event=event, now=now, tz=""))]
        for tz, when in groups:
            tz_clause = "AND c.timezone = %s" if tz is not None else ""
            params: list[Any] = [event.pk, campaign.pk, _db_now(when), _db_now(now), campaign.pk]
            if tz is not None:
                params.append(tz)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"""
                    INSERT INTO {_table(CampaignEventLog)} (event_id, campaign_id, contact_id, entry, status,
                                                            trigger_at, detail, created_at)
                    SELECT %s, %s, m.contact_id, m.entry, 'scheduled', %s, '', %s
                    FROM {_table(CampaignMember)} m
                    JOIN {_table(Contact)} c ON c.id = m.contact_id
                    WHERE m.campaign_id = %s AND m.manually_removed = false {tz_clause}
                    ON CONFLICT (event_id, contact_id, entry) DO NOTHING
                    """,  # noqa: S608 - table names come from model metadata, values are parameters
                    params,
                )
                total += max(cursor.rowcount, 0)
    return total


def _finished_rows_sql(log_ids: list[int]) -> tuple[str, tuple[Any, ...]]:
    """A SELECT of (campaign_id, contact_id, entry) for these logs, to feed the INSERT … SELECTs below."""
    rows = CampaignEventLog.objects.filter(id__in=log_ids).order_by().values_list("campaign_id", "contact_id", "entry")
    sql, params = rows.query.sql_with_params()
    return sql, tuple(params)


def _children_schedule(
    *, event: CampaignEvent, path: str | None, rows: list[tuple[int, int, int]], now: dt.datetime, tz_of: dict[int, str]
) -> int:
    """Schedule the children of ``event`` on ``path`` for (log_id, contact_id, entry) rows.

    A child without an hour/weekday window has one trigger time for everyone: one INSERT … SELECT from the finished
    logs (building a model per contact was the engine's biggest cost). A windowed child's time depends on each
    contact's timezone, so its rows are built in Python.
    """
    children = [c for c in _children_of(event) if c.path == path]
    if not children or not rows:
        return 0
    source_sql, source_params = _finished_rows_sql([r[0] for r in rows])
    logs = []
    for child in children:
        if not child.has_window:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"""
                    INSERT INTO {_table(CampaignEventLog)} (event_id, campaign_id, contact_id, entry, status,
                                                            trigger_at, detail, created_at)
                    SELECT %s, s.campaign_id, s.contact_id, s.entry, 'scheduled', %s, '', %s
                    FROM ({source_sql}) s
                    WHERE true
                    ON CONFLICT (event_id, contact_id, entry) DO NOTHING
                    """,  # noqa: S608 - table names come from model metadata, values are parameters
                    [child.pk, _db_now(trigger_at(event=child, now=now, tz="")), _db_now(now), *source_params],
                )
            continue
        tz_of = tz_of or _timezones([r[1] for r in rows])
        logs += [
            CampaignEventLog(
                event_id=child.pk,
                campaign_id=event.campaign_id,
                contact_id=contact_id,
                entry=entry,
                status=LogStatus.SCHEDULED,
                trigger_at=trigger_at(event=child, now=now, tz=tz_of.get(contact_id, "")),
            )
            for _, contact_id, entry in rows
        ]
    CampaignEventLog.objects.bulk_create(logs, batch_size=2000, ignore_conflicts=True)
    return len(rows) * len(children)


def _timeline_write(*, rows: list[tuple[int, int, int]], title: str, detail: dict[str, Any], now: dt.datetime) -> None:
    """One timeline entry per contact of ``rows``, alike but for the contact: one INSERT … SELECT (the contacts
    app's ``timeline_record_many`` builds a model per entry, too slow at a campaign's scale)."""
    source_sql, source_params = _finished_rows_sql([r[0] for r in rows])
    detail_sql = "CAST(%s AS jsonb)" if connection.vendor == "postgresql" else "%s"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {_table(TimelineEvent)} (contact_id, kind, title, detail, occurred_at, created_at)
            SELECT s.contact_id, %s, %s, {detail_sql}, %s, %s
            FROM ({source_sql}) s
            """,  # noqa: S608 - table names come from model metadata, values are parameters
            ["campaign.event", title[:255], json.dumps(detail), _db_now(now), _db_now(now), *source_params],
        )


def _children_of(event: CampaignEvent) -> list[CampaignEvent]:
    return list(event.children.all())


# Claiming


def stale_running_reset(*, older_than: dt.timedelta, campaign_id: int | None = None) -> int:
    """Return logs left ``running`` by a process that died to ``scheduled`` (their effect never committed)."""
    qs = CampaignEventLog.objects.filter(status=LogStatus.RUNNING, claimed_at__lte=timezone.now() - older_than)
    if campaign_id:
        qs = qs.filter(campaign_id=campaign_id)
    return qs.update(status=LogStatus.SCHEDULED, claimed_at=None)


def _due(status: str, now: dt.datetime, campaign_id: int | None, contact_id: int | None) -> Any:
    qs = CampaignEventLog.objects.filter(status=status, trigger_at__lte=now, campaign__is_published=True)
    if campaign_id:
        qs = qs.filter(campaign_id=campaign_id)
    if contact_id:
        qs = qs.filter(contact_id=contact_id)
    return qs


def logs_claim(
    *, batch: int, now: dt.datetime | None = None, campaign_id: int | None = None, contact_id: int | None = None
) -> list[int]:
    """Claim up to ``batch`` due logs (``scheduled -> running``); concurrent claimers skip each other's rows."""
    now = now or timezone.now()
    with transaction.atomic():
        ids = list(
            _due(LogStatus.SCHEDULED, now, campaign_id, contact_id)
            .order_by("trigger_at", "id")
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("id", flat=True)[:batch]
        )
        if not ids:
            return []
        CampaignEventLog.objects.filter(id__in=ids, status=LogStatus.SCHEDULED).update(
            status=LogStatus.RUNNING, claimed_at=now
        )
    return ids


# Running


@dataclass
class _Batch:
    event: CampaignEvent
    rows: list[tuple[int, int, int]]  # (log_id, contact_id, entry)

    @property
    def log_ids(self) -> list[int]:
        return [r[0] for r in self.rows]

    @property
    def contact_ids(self) -> list[int]:
        return [r[1] for r in self.rows]


def _timezones(contact_ids: list[int]) -> dict[int, str]:
    return dict(Contact.objects.filter(id__in=contact_ids).values_list("id", "timezone"))


def _finish(
    batch: _Batch,
    *,
    now: dt.datetime,
    status: str,
    path_of: dict[int, str | None],
    detail: str,
    tz_of: dict[int, str],
) -> int:
    """Mark the batch's logs finished, follow the paths taken and write the timeline, all in bulk."""
    by_path: dict[str | None, list[tuple[int, int, int]]] = defaultdict(list)
    for row in batch.rows:
        by_path[path_of.get(row[1])].append(row)
    for path, rows in by_path.items():
        CampaignEventLog.objects.filter(id__in=[r[0] for r in rows], status=LogStatus.RUNNING).update(
            status=status, path_taken=path, executed_at=now, detail=detail[:255]
        )
        if status == LogStatus.DONE:
            _children_schedule(event=batch.event, path=path, rows=rows, now=now, tz_of=tz_of)
        _timeline_write(
            rows=rows,
            title=_timeline_title(batch.event.campaign.name, batch.event, status, path),
            detail={
                "campaign_id": batch.event.campaign_id,
                "event_id": batch.event.pk,
                "kind": batch.event.kind,
                "status": status,
                "path": path,
                "detail": detail[:255],
            },
            now=now,
        )
    return len(batch.rows)


def _timeline_title(campaign_name: str, event: CampaignEvent, status: str, path: str | None) -> str:
    outcome = f" → {path}" if path else ""
    failed = " (failed)" if status == LogStatus.FAILED else ""
    return f"Campaign “{campaign_name}”: {event.label}{outcome}{failed}"


def campaign_send_ref(*, event_id: int, entry: int) -> str:
    """The outbound log's ``source_ref`` for a campaign send: unique per (event, contact, entry) with the contact,
    by texts' partial unique constraint, so a re-run after a crash never queues a second text."""
    return f"campaign-event:{event_id}:{entry}"


def _run_action(batch: _Batch, *, now: dt.datetime, priority: bool = False) -> tuple[str, str]:
    """Carry out an action for the whole batch; returns (status, detail)."""
    event, ids = batch.event, batch.contact_ids
    kind = event.kind
    if kind == EventKind.SEND_TEXT_MESSAGE:
        text_message = event.text_message
        if text_message is None:
            return LogStatus.FAILED, "The action has no text message"
        # One call per entry in the batch (almost always one): Do Not Contact, missing numbers and quiet hours are
        # the pipeline's business, not the campaign's.
        by_entry: dict[int, list[int]] = defaultdict(list)
        for _, contact_id, entry in batch.rows:
            by_entry[entry].append(contact_id)
        queued = sum(
            outbound_enqueue(
                text_message=text_message,
                contacts=contact_ids,
                source=Source.CAMPAIGN,
                source_ref=campaign_send_ref(event_id=event.pk, entry=entry),
                priority=priority,
            )
            for entry, contact_ids in by_entry.items()
        )
        return LogStatus.DONE, f"Queued {queued} of {len(ids)} in this batch"
    if kind in (EventKind.ADD_TO_SEGMENT, EventKind.REMOVE_FROM_SEGMENT):
        segment = Segment.objects.filter(pk=event.prop("segment_id")).first()
        if segment is None:
            return LogStatus.FAILED, "The segment no longer exists"
        if kind == EventKind.ADD_TO_SEGMENT:
            SegmentMembership.objects.bulk_create(
                [SegmentMembership(segment=segment, contact_id=cid, manually_added=True) for cid in ids],
                ignore_conflicts=True,
            )
            SegmentMembership.objects.filter(segment=segment, contact_id__in=ids).update(
                manually_added=True, manually_removed=False
            )
            return LogStatus.DONE, f"Added to {segment.name}"
        # A removal row stays, so a filter-based segment's rebuild does not add the contact back.
        SegmentMembership.objects.filter(segment=segment, contact_id__in=ids).update(
            manually_removed=True, manually_added=False
        )
        return LogStatus.DONE, f"Removed from {segment.name}"
    if kind == EventKind.ADD_DNC:
        dnc_add_many(
            contact_ids=ids,
            reason=DoNotContact.Reason.MANUAL,
            source=DoNotContact.Source.CAMPAIGN,
            comment=f"Campaign {event.campaign.name}",
        )
        return LogStatus.DONE, "Marked Do Not Contact (SMS)"
    if kind == EventKind.REMOVE_DNC:
        lifted = dnc_remove_many(
            contact_ids=ids, source=DoNotContact.Source.CAMPAIGN, comment=f"Campaign {event.campaign.name}"
        )
        return LogStatus.DONE, f"Do Not Contact lifted for {len(lifted)}"
    return LogStatus.FAILED, f"Unknown action {kind}"


def _condition_yes(event: CampaignEvent, ids: list[int]) -> set[int]:
    """The contacts of ``ids`` for whom the condition holds, decided in one query."""
    contacts = Contact.objects.filter(id__in=ids)
    if event.kind == EventKind.DNC_SMS:
        return set(dnc_active().filter(contact_id__in=ids).values_list("contact_id", flat=True))
    if event.kind == EventKind.IN_SEGMENT:
        return set(segment_member_ids(event.prop("segment_ids", [])).filter(id__in=ids))
    return set(contacts.filter(field_condition_q(event.properties)).values_list("id", flat=True))


def field_condition_q(props: dict[str, Any]) -> Q:
    """A contact field compared to a value, as a Q (custom fields as ``custom:<key>``)."""
    name, operator, value = props.get("field", ""), props.get("operator", "eq"), props.get("value", "")
    lookup = f"custom_fields__{name.removeprefix('custom:')}" if name.startswith("custom:") else name
    if operator == "empty":
        return Q(**{f"{lookup}__isnull": True}) | Q(**{lookup: ""})
    if operator == "not_empty":
        return ~(Q(**{f"{lookup}__isnull": True}) | Q(**{lookup: ""}))
    suffix = {
        "eq": "iexact",
        "neq": "iexact",
        "contains": "icontains",
        "starts_with": "istartswith",
        "ends_with": "iendswith",
        "gt": "gt",
        "lt": "lt",
    }[operator]
    q = Q(**{f"{lookup}__{suffix}": value})
    return ~q if operator == "neq" else q


def reply_matches(event: CampaignEvent, body: str) -> bool:
    """Does this reply satisfy the decision? Patterns use ``*`` and ``?`` and ignore case."""
    text = (body or "").strip().lower()
    if event.kind == EventKind.REPLIED_TO_TEXT:
        pattern = (event.prop("pattern") or "").strip().lower()
        return not pattern or fnmatch.fnmatchcase(text, pattern)
    if event.kind == EventKind.REPLY_CONTAINS_KEYWORD:
        keyword = (event.prop("keyword") or "").strip()
        return bool(keyword) and re.search(rf"(?<!\w){re.escape(keyword)}(?!\w)", body or "", re.IGNORECASE) is not None
    return False


def _run_batch(batch: _Batch, *, now: dt.datetime, summary: RunSummary, priority: bool = False) -> None:
    event = batch.event
    tz_of = _timezones(batch.contact_ids) if event.has_window else {}  # children look theirs up when they need it
    # Outside its window (the run came late, or the window was edited): back to scheduled at the next opening.
    if event.has_window:
        outside = [r for r in batch.rows if not is_allowed(now, event=event, tz=tz_of.get(r[1], ""))]
        for log_id, contact_id, _ in outside:
            CampaignEventLog.objects.filter(id=log_id, status=LogStatus.RUNNING).update(
                status=LogStatus.SCHEDULED,
                claimed_at=None,
                trigger_at=next_allowed(now, event=event, tz=tz_of.get(contact_id, "")),
            )
        summary.deferred += len(outside)
        batch = _Batch(event=event, rows=[r for r in batch.rows if r not in outside])
        if not batch.rows:
            return
    if event.event_type == EventType.DECISION:
        # Wait for the contact; a reply moves the log on at once, the timeout sends it down the no path.
        CampaignEventLog.objects.filter(id__in=batch.log_ids, status=LogStatus.RUNNING).update(
            status=LogStatus.WAITING, trigger_at=now + event.wait_delta(), claimed_at=None, detail="Waiting for a reply"
        )
        # Contacts whose text is still queued start their wait when it leaves (campaigns.waits).
        waits.hold_until_text_sent(event=event, log_ids=batch.log_ids, now=now)
        summary.waiting += len(batch.rows)
        return
    if event.event_type == EventType.CONDITION:
        yes = _condition_yes(event, batch.contact_ids)
        path_of: dict[int, str | None] = {cid: (Path.YES if cid in yes else Path.NO) for cid in batch.contact_ids}
        summary.executed += _finish(batch, now=now, status=LogStatus.DONE, path_of=path_of, detail="", tz_of=tz_of)
        return
    status, detail = _run_action(batch, now=now, priority=priority)
    count = _finish(batch, now=now, status=status, path_of={}, detail=detail, tz_of=tz_of)
    if status == LogStatus.FAILED:
        summary.failed += count
    else:
        summary.executed += count
        summary.per_kind[event.kind] = summary.per_kind.get(event.kind, 0) + count


def logs_run(
    *,
    log_ids: list[int],
    now: dt.datetime | None = None,
    summary: RunSummary | None = None,
    priority: bool = False,
) -> RunSummary:
    """Run claimed logs, one transaction per event: its effect and the logs' new status commit together.

    ``priority``: texts they send take their sender's next slot ahead of bulk (a follow-up to a reply)."""
    now = now or timezone.now()
    summary = summary or RunSummary()
    rows = CampaignEventLog.objects.filter(id__in=log_ids, status=LogStatus.RUNNING).values_list(
        "id", "event_id", "contact_id", "entry"
    )
    by_event: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    for log_id, event_id, contact_id, entry in rows:
        by_event[event_id].append((log_id, contact_id, entry))
    events = CampaignEvent.objects.select_related("campaign", "text_message").in_bulk(list(by_event))
    for event_id, event_rows in by_event.items():
        batch = _Batch(event=events[event_id], rows=event_rows)
        try:
            with transaction.atomic():
                _run_batch(batch, now=now, summary=summary, priority=priority)
        except Exception as exc:  # an unexpected error fails this batch, not the whole run
            with transaction.atomic():
                _finish(
                    batch,
                    now=now,
                    status=LogStatus.FAILED,
                    path_of={},
                    detail=f"Error: {exc.__class__.__name__}: {exc}",
                    tz_of={},
                )
            summary.failed += len(event_rows)
    return summary


def decisions_time_out(
    *, batch: int, now: dt.datetime | None = None, campaign_id: int | None = None, summary: RunSummary
) -> int:
    """Send decisions whose wait is over down their no path (one transaction per batch)."""
    now = now or timezone.now()
    # First the waits whose text has left since (a safety net for the engine's own signal, campaigns.waits).
    waits.waits_start(now=now, campaign_id=campaign_id)
    total = 0
    while True:
        with transaction.atomic():
            rows = list(
                _due(LogStatus.WAITING, now, campaign_id, None)
                .order_by("trigger_at", "id")
                .select_for_update(skip_locked=True, of=("self",))
                .values_list("id", "event_id", "contact_id", "entry")[:batch]
            )
            if not rows:
                return total
            CampaignEventLog.objects.filter(id__in=[r[0] for r in rows], status=LogStatus.WAITING).update(
                status=LogStatus.RUNNING, claimed_at=now
            )
            by_event: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
            for log_id, event_id, contact_id, entry in rows:
                by_event[event_id].append((log_id, contact_id, entry))
            events = CampaignEvent.objects.select_related("campaign").in_bulk(list(by_event))
            for event_id, event_rows in by_event.items():
                b = _Batch(event=events[event_id], rows=event_rows)
                _finish(
                    b,
                    now=now,
                    status=LogStatus.DONE,
                    path_of=dict.fromkeys(b.contact_ids, Path.NO),
                    detail="No reply in time",
                    tz_of={},
                )
            total += len(rows)
            summary.timed_out += len(rows)


def reply_received(*, contact_id: int, body: str, now: dt.datetime | None = None) -> list[int]:
    """A reply from this contact: decisions waiting for it take their yes path now. Returns the logs moved on."""
    now = now or timezone.now()
    moved: list[int] = []
    waiting = CampaignEventLog.objects.filter(
        contact_id=contact_id,
        status=LogStatus.WAITING,
        campaign__is_published=True,
        event__kind__in=DECISION_KINDS,
    ).select_related("event", "event__campaign")
    candidates = list(waiting)  # read outside a transaction: most replies find nothing waiting, and cost one query
    if not candidates:
        return moved
    with transaction.atomic():
        for log in candidates:
            if not reply_matches(log.event, body):
                continue
            won = CampaignEventLog.objects.filter(id=log.pk, status=LogStatus.WAITING).update(
                status=LogStatus.RUNNING, claimed_at=now
            )
            if not won:  # the timeout or another reply got there first
                continue
            _finish(
                _Batch(event=log.event, rows=[(log.pk, contact_id, log.entry)]),
                now=now,
                status=LogStatus.DONE,
                path_of={contact_id: Path.YES},
                detail="Replied",
                tz_of={},
            )
            moved.append(log.pk)
    return moved


def contact_events_run(*, contact_id: int, batch: int = 100) -> RunSummary:
    """Run what is due for one contact now (after a reply), without waiting for the next engine run."""
    summary = RunSummary()
    for _ in range(50):  # a chain of immediate events is finite; the bound only guards against a cycle in data
        ids = logs_claim(batch=batch, contact_id=contact_id)
        if not ids:
            break
        # A follow-up to the contact's reply: a conversation, so its texts go ahead of bulk sends.
        logs_run(log_ids=ids, summary=summary, priority=True)
    return summary


def process_campaigns(
    *,
    campaign_id: int | None = None,
    batch: int = 500,
    stale_after: dt.timedelta | None = None,
    max_batches: int = 100_000,
    on_batch: Callable[[RunSummary], None] | None = None,
) -> RunSummary:
    """One engine run: reset stale claims, sync members, schedule roots, time out decisions, run due events."""
    summary = RunSummary()
    summary.reset = stale_running_reset(older_than=stale_after or stale_after_default(), campaign_id=campaign_id)
    campaigns = Campaign.objects.filter(is_published=True)
    if campaign_id:
        campaigns = campaigns.filter(pk=campaign_id)
    for campaign in campaigns:
        added, removed = members_sync(campaign=campaign)
        summary.members_added += added
        summary.members_removed += removed
        summary.scheduled += roots_schedule(campaign=campaign)
    decisions_time_out(batch=batch, campaign_id=campaign_id, summary=summary)
    for _ in range(max_batches):
        ids = logs_claim(batch=batch, campaign_id=campaign_id)
        if not ids:
            break
        logs_run(log_ids=ids, summary=summary)
        summary.batches += 1
        if on_batch:
            on_batch(summary)
    return summary
