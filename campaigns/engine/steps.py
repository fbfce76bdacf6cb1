"""Running one event for a batch of contacts, set-based, and what follows it.

A batch lives in a temporary table (``sql.BATCH``), filled by one statement from its source: the event's due
scheduled logs (claimed with SKIP LOCKED, so two runs never take the same), the members who have not had an
immediate first event yet, decisions whose wait is over, or the one decision a reply resolved. Then, whatever its
size: a condition's yes/no path is one UPDATE of the batch; an action is one call of the contacts or texts service
with the batch as its set of contacts (``outbound_enqueue`` for a send: one INSERT … SELECT); the event log is one
statement (an UPDATE of the claimed logs, or an INSERT of new ones, the unique (event, contact, entry) deciding);
the timeline is one INSERT … SELECT. The children follow in the same transaction: one that is due now joins the
batch under its own event and runs the same way (a chain of immediate events costs one transaction, and no log row
is written twice); one that waits (an interval, a date, an hour or weekday window) is scheduled by one INSERT … SELECT.

Crash safety: a batch, its effects, its logs and its children commit together or not at all. A process killed
mid-batch leaves its logs as they were (scheduled, or not yet written) and the next run does that batch again.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.lookups import Lookup

from contacts.models import Contact, DoNotContact, Segment, TimelineEvent
from contacts.services import (
    contact_dnc_sql,
    contact_in_segments_sql,
    dnc_add_matching,
    dnc_remove_matching,
    segment_add_contacts,
    segment_remove_contacts,
)
from texts.models import Source as SendSource
from texts.services import outbound_enqueue

from .. import waits
from ..models import CampaignEvent, CampaignEventLog, CampaignMember, EventKind, EventType, LogStatus, Path
from ..windows import is_allowed, next_allowed, trigger_at
from .rules import field_condition_q
from .sql import BATCH, batch_analyzed, batch_table_ready, db_time, json_param, skip_locked, table

logger = logging.getLogger(__name__)

# Sources that resolve one waiting decision for one contact, down its yes path.
ANSWERS = ("reply", "click")


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


def campaign_send_ref(*, event_id: int, entry: int) -> str:
    """The outbound log's ``source_ref`` for a campaign send: unique per (event, contact, entry) with the contact,
    by texts' partial unique constraint, so a re-run after a crash never queues a second text."""
    return f"campaign-event:{event_id}:{entry}"


@dataclass(frozen=True)
class Source:
    """Where a batch comes from (see the module docstring); ``limit`` rows at most."""

    kind: str  # "claim" | "root" | "timeout" | "reply" | "click", or "chain" for an event run after its parent
    event: CampaignEvent
    limit: int
    contact_id: int | None = None  # "claim": only this contact's logs (what a reply made due)
    after: int = 0  # "root": members after this contact id (keyset)
    log_id: int | None = None  # "reply", "click": the waiting decision's log
    # Texts it sends take their sender's next slot ahead of bulk: a follow-up to the contact's reply.
    priority: bool = False


def step(source: Source, *, now: dt.datetime, summary: RunSummary) -> tuple[int, int]:
    """Fill one batch and run it with what follows, in one transaction; (rows taken, last contact id taken).

    An unexpected error fails this batch's logs (and says why on them), not the whole run: the same rows are taken
    again in a fresh transaction and written failed.
    """
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            count, last = _fill(cursor, source, now)
            if count:
                batch_analyzed(cursor)
                _run(cursor, source.event, now=now, summary=summary, logged=source.kind != "root", source=source)
            return count, last
    except Exception as exc:
        logger.exception("campaign event %s: batch failed", source.event.pk)
        with transaction.atomic(), connection.cursor() as cursor:
            count, last = _fill(cursor, source, now)
            if count:
                _write(
                    cursor,
                    source.event,
                    now=now,
                    status=LogStatus.FAILED,
                    detail=_error(exc),
                    logged=source.kind != "root",
                )
        summary.failed += count
        return count, last


def _error(exc: Exception) -> str:
    return f"Error: {exc.__class__.__name__}: {exc}"[:255]


# Filling a batch


def _fill(cursor: Any, source: Source, now: dt.datetime) -> tuple[int, int]:
    batch_table_ready(cursor)
    log, event = table(CampaignEventLog), source.event
    into = f"INSERT INTO {BATCH} (event_id, log_id, contact_id, entry, path) "
    if source.kind == "root":
        cursor.execute(
            f"""{into}
            SELECT %s, NULL, m.contact_id, m.entry, NULL FROM {table(CampaignMember)} m
            WHERE m.campaign_id = %s AND m.manually_removed = %s AND m.contact_id > %s
              AND NOT EXISTS (SELECT 1 FROM {log} l
                              WHERE l.event_id = %s AND l.contact_id = m.contact_id AND l.entry = m.entry)
            ORDER BY m.contact_id LIMIT %s
            """,  # noqa: S608 - names come from model metadata, values are parameters
            [event.pk, event.campaign_id, False, source.after, event.pk, source.limit],
        )
    elif source.kind in ANSWERS:
        lock = " FOR UPDATE" if connection.vendor == "postgresql" else ""
        cursor.execute(
            into + f"SELECT event_id, id, contact_id, entry, %s FROM {log} WHERE id = %s AND status = %s{lock}",  # noqa: S608
            [Path.YES, source.log_id, LogStatus.WAITING],
        )
    else:
        # The status is written into the SQL, not passed: the partial indexes are chosen only for a literal.
        status, path = ("waiting", Path.NO) if source.kind == "timeout" else ("scheduled", None)
        one_contact = " AND contact_id = %s" if source.contact_id else ""
        params: list[Any] = [path, event.pk, db_time(now)]
        params += [source.contact_id] if source.contact_id else []
        cursor.execute(
            f"""{into}
            SELECT event_id, id, contact_id, entry, %s FROM {log}
            WHERE event_id = %s AND status = '{status}' AND trigger_at <= %s{one_contact}
            ORDER BY trigger_at, id LIMIT %s{skip_locked()}
            """,  # noqa: S608 - names come from model metadata, values are parameters
            [*params, source.limit],
        )
    count = max(cursor.rowcount, 0)
    last = 0
    if count and source.kind == "root":
        cursor.execute(f"SELECT max(contact_id) FROM {BATCH}")  # noqa: S608
        last = int(cursor.fetchone()[0])
    return count, last


def batch_contacts(event: CampaignEvent, *, entry: int | None = None) -> QuerySet[Contact]:
    """The batch's contacts for this event, as a queryset the contacts and texts services take as their set."""
    sql = f"SELECT contact_id FROM {BATCH} WHERE event_id = %s" + (" AND entry = %s" if entry is not None else "")  # noqa: S608
    params = (event.pk, entry) if entry is not None else (event.pk,)
    if connection.vendor != "postgresql":
        return Contact.objects.filter(pk__in=RawSQL(sql, params))  # noqa: S611 - constant SQL, values are parameters
    # An array of the batch's ids, so each contact is one primary-key probe: ``id IN (batch)`` was planned as a
    # hash of the batch probed by a scan of every contact, in each of a batch's statements (O(contacts) per batch).
    return Contact.objects.filter(_InArray(F("pk"), RawSQL(sql, params)))  # noqa: S611 - constant SQL, values are parameters


class _InArray(Lookup[Any]):
    """``column = ANY(ARRAY(subquery))``: the subquery runs once, then one index probe per value it gave."""

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)  # "(SELECT …)", parenthesised by RawSQL
        return f"{lhs} = ANY(ARRAY{rhs})", (*lhs_params, *rhs_params)


# Running it


def _run(
    cursor: Any, event: CampaignEvent, *, now: dt.datetime, summary: RunSummary, logged: bool, source: Source
) -> None:
    """Run ``event`` for its rows of the batch: effect, log, timeline, then its children."""
    resolved = source.kind in ("timeout", *ANSWERS) and event.event_type == EventType.DECISION
    if logged and not resolved and event.has_window:
        summary.deferred += _defer_outside_window(cursor, event, now)
    count = _count(cursor, event)
    if not count:
        return
    if event.event_type == EventType.DECISION and not resolved:
        _wait(cursor, event, now=now, logged=logged)
        summary.waiting += count
        return
    status: str
    if resolved:
        status, detail = LogStatus.DONE, _resolved_detail(event, source.kind)
    elif event.event_type == EventType.CONDITION:
        _take_paths(cursor, event)
        status, detail = LogStatus.DONE, ""
    else:
        status, detail = _act(event, count, priority=source.priority)
    _write(cursor, event, now=now, status=status, detail=detail, logged=logged)
    if source.kind == "timeout":
        summary.timed_out += count
    elif source.kind not in ANSWERS:
        if status == LogStatus.FAILED:
            summary.failed += count
        else:
            summary.executed += count
            if event.event_type == EventType.ACTION:
                summary.per_kind[event.kind] = summary.per_kind.get(event.kind, 0) + count
    if status == LogStatus.DONE:
        _follow(cursor, event, now=now, summary=summary, chain=source.kind not in ANSWERS, source=source)


def _resolved_detail(event: CampaignEvent, kind: str) -> str:
    waited = "click" if event.kind == EventKind.CLICKED_LINK else "reply"
    if kind == "timeout":
        return f"No {waited} in time"
    return "Clicked a link" if kind == "click" else "Replied"


def _count(cursor: Any, event: CampaignEvent) -> int:
    cursor.execute(f"SELECT count(*) FROM {BATCH} WHERE event_id = %s", [event.pk])  # noqa: S608
    return int(cursor.fetchone()[0])


def _timezones(cursor: Any, event: CampaignEvent, path: str | None = None) -> list[str]:
    """The distinct time zones of the batch's contacts for this event (a handful, whatever the batch's size)."""
    on_path = " AND b.path = %s" if path else ""
    cursor.execute(
        f"SELECT DISTINCT c.timezone FROM {BATCH} b JOIN {table(Contact)} c ON c.id = b.contact_id "  # noqa: S608
        f"WHERE b.event_id = %s{on_path}",
        [event.pk, *([path] if path else [])],
    )
    return [row[0] for row in cursor.fetchall()]


def _by_timezone(moments: dict[str, dt.datetime]) -> tuple[str, list[Any]]:
    """A CASE on the contact's time zone (``c.timezone``) giving each zone's moment."""
    sql = "CASE c.timezone " + " ".join("WHEN %s THEN %s" for _ in moments) + " END"
    params: list[Any] = []
    for zone, moment in moments.items():
        params += [zone, db_time(moment)]
    return sql, params


def _defer_outside_window(cursor: Any, event: CampaignEvent, now: dt.datetime) -> int:
    """Claimed logs whose contact's window is closed now go back to wait for its next opening (the run came late,
    or the window was edited); they leave the batch. Decided per time zone, not per contact."""
    outside = {zone: next_allowed(now, event=event, tz=zone) for zone in _timezones(cursor, event)}
    outside = {zone: moment for zone, moment in outside.items() if not is_allowed(now, event=event, tz=zone)}
    if not outside:
        return 0
    case, params = _by_timezone(outside)
    zones = ", ".join(["%s"] * len(outside))
    contacts = f"SELECT id FROM {table(Contact)} c WHERE c.timezone IN ({zones})"  # noqa: S608
    log = table(CampaignEventLog)
    cursor.execute(
        f"UPDATE {log} SET claimed_at = NULL, trigger_at = (SELECT {case} FROM {table(Contact)} c "  # noqa: S608
        f"WHERE c.id = {log}.contact_id) "
        f"WHERE id IN (SELECT log_id FROM {BATCH} WHERE event_id = %s AND contact_id IN ({contacts}))",
        [*params, event.pk, *outside],
    )
    cursor.execute(
        f"DELETE FROM {BATCH} WHERE event_id = %s AND contact_id IN ({contacts})",  # noqa: S608
        [event.pk, *outside],
    )
    return max(cursor.rowcount, 0)


def _wait(cursor: Any, event: CampaignEvent, *, now: dt.datetime, logged: bool) -> None:
    """A decision waits for the contact: a reply (or a click) moves it on at once, the end of the wait takes the no
    path. Contacts whose text above it has not left yet wait for it first, without a deadline (``waits``)."""
    _wait_write(cursor, event, now=now, logged=logged)
    waits.hold_until_text_sent(event=event, contacts=batch_contacts(event), now=now)


def _wait_write(cursor: Any, event: CampaignEvent, *, now: dt.datetime, logged: bool) -> None:
    until, detail = db_time(now + event.wait_delta()), waits.WAITING
    log = table(CampaignEventLog)
    if logged:
        cursor.execute(
            f"UPDATE {log} SET status = %s, trigger_at = %s, claimed_at = NULL, detail = %s "  # noqa: S608
            f"WHERE id IN (SELECT log_id FROM {BATCH} WHERE event_id = %s)",
            [LogStatus.WAITING, until, detail, event.pk],
        )
        return
    cursor.execute(
        f"INSERT INTO {log} (event_id, campaign_id, contact_id, entry, status, trigger_at, detail, created_at) "  # noqa: S608
        f"SELECT event_id, %s, contact_id, entry, %s, %s, %s, %s FROM {BATCH} WHERE event_id = %s "
        "ON CONFLICT (event_id, contact_id, entry) DO NOTHING",
        [event.campaign_id, LogStatus.WAITING, until, detail, db_time(now), event.pk],
    )


def _take_paths(cursor: Any, event: CampaignEvent) -> None:
    """A condition's yes/no for the whole batch: one UPDATE of the batch, the condition asked row by row (an index
    probe each) in the contacts app's own words."""
    column = f"{BATCH}.contact_id"
    if event.kind == EventKind.DNC_SMS:
        yes_sql, yes_params = contact_dnc_sql(contact_column=column)
    elif event.kind == EventKind.IN_SEGMENT:
        yes_sql, yes_params = contact_in_segments_sql(segment_ids=event.prop("segment_ids", []), contact_column=column)
    else:
        matching = batch_contacts(event).filter(field_condition_q(event.properties)).values("id")
        try:
            sql, params = matching.query.sql_with_params()
            yes_sql, yes_params = f"contact_id IN ({sql})", list(params)
        except EmptyResultSet:
            yes_sql, yes_params = "false", []
    cursor.execute(
        f"UPDATE {BATCH} SET path = CASE WHEN {yes_sql} THEN %s ELSE %s END WHERE event_id = %s",  # noqa: S608
        [*yes_params, Path.YES, Path.NO, event.pk],
    )


def _act(event: CampaignEvent, count: int, *, priority: bool = False) -> tuple[str, str]:
    """Carry out an action for the whole batch through the owning app's set-based service: (status, detail)."""
    kind, contacts = event.kind, batch_contacts(event)
    if kind == EventKind.SEND_TEXT_MESSAGE:
        text_message = event.text_message
        if text_message is None:
            return LogStatus.FAILED, "The action has no text message"
        # Do Not Contact, missing numbers and quiet hours are the pipeline's business, not the campaign's.
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT DISTINCT entry FROM {BATCH} WHERE event_id = %s", [event.pk])  # noqa: S608
            entries = sorted(row[0] for row in cursor.fetchall())
        queued = sum(
            outbound_enqueue(
                text_message=text_message,
                contacts=batch_contacts(event, entry=entry),
                source=SendSource.CAMPAIGN,
                source_ref=campaign_send_ref(event_id=event.pk, entry=entry),
                priority=priority,
            )
            for entry in entries
        )
        return LogStatus.DONE, f"Queued {queued} of {count} in this batch"
    if kind in (EventKind.ADD_TO_SEGMENT, EventKind.REMOVE_FROM_SEGMENT):
        segment = Segment.objects.filter(pk=event.prop("segment_id")).first()
        if segment is None:
            return LogStatus.FAILED, "The segment no longer exists"
        if kind == EventKind.ADD_TO_SEGMENT:
            segment_add_contacts(segment=segment, contact_ids=contacts)
            return LogStatus.DONE, f"Added to {segment.name}"
        # keep_rows: the removal stays as a row, so a filter-based segment's rebuild does not add the contact back.
        segment_remove_contacts(segment=segment, contact_ids=contacts, keep_rows=True)
        return LogStatus.DONE, f"Removed from {segment.name}"
    comment = f"Campaign {event.campaign.name}"
    if kind == EventKind.ADD_DNC:
        dnc_add_matching(
            contacts=contacts,
            reason=DoNotContact.Reason.MANUAL,
            source=DoNotContact.Source.CAMPAIGN,
            comment=comment,
            announce=True,  # an opt-out the campaign made is news to the apps above (outgoing webhooks)
        )
        return LogStatus.DONE, "Marked Do Not Contact (SMS)"
    if kind == EventKind.REMOVE_DNC:
        lifted = dnc_remove_matching(
            contacts=contacts, source=DoNotContact.Source.CAMPAIGN, comment=comment, announce=True
        )
        return LogStatus.DONE, f"Do Not Contact lifted for {lifted}"
    return LogStatus.FAILED, f"Unknown action {kind}"


def _write(cursor: Any, event: CampaignEvent, *, now: dt.datetime, status: str, detail: str, logged: bool) -> None:
    """The batch's logs for this event in their final state (one statement) and its timeline (one statement)."""
    log, stamp = table(CampaignEventLog), db_time(now)
    if logged:
        cursor.execute(
            f"UPDATE {log} SET status = %s, path_taken = b.path, executed_at = %s, claimed_at = %s, detail = %s "  # noqa: S608
            f"FROM {BATCH} b WHERE {log}.id = b.log_id AND b.event_id = %s",
            [status, stamp, stamp, detail[:255], event.pk],
        )
    else:
        cursor.execute(
            f"INSERT INTO {log} (event_id, campaign_id, contact_id, entry, status, trigger_at, claimed_at, "  # noqa: S608
            "executed_at, path_taken, detail, created_at) "
            f"SELECT event_id, %s, contact_id, entry, %s, %s, %s, %s, path, %s, %s FROM {BATCH} WHERE event_id = %s "
            "ON CONFLICT (event_id, contact_id, entry) DO NOTHING",
            [event.campaign_id, status, stamp, stamp, stamp, detail[:255], stamp, event.pk],
        )
    # The three possible entries (yes, no, no path) are built once per batch and joined on the path: a CASE per row
    # cast its JSON to jsonb once per contact (a fifth of the timeline statement's time).
    entries, params = [], []
    for path in (Path.YES, Path.NO, None):
        entries.append(f"SELECT %s AS path, %s AS title, {json_param()} AS detail")
        body = {
            "campaign_id": event.campaign_id,
            "event_id": event.pk,
            "kind": event.kind,
            "status": status,
            "path": path,
            "detail": detail[:255],
        }
        params += [path or "", _timeline_title(event.campaign.name, event, status, path)[:255], json.dumps(body)]
    cursor.execute(
        f"INSERT INTO {table(TimelineEvent)} (contact_id, kind, title, detail, occurred_at, created_at) "  # noqa: S608
        f"SELECT b.contact_id, %s, t.title, t.detail, %s, %s FROM {BATCH} b "
        f"JOIN ({' UNION ALL '.join(entries)}) t ON t.path = COALESCE(b.path, '') WHERE b.event_id = %s",
        ["campaign.event", stamp, stamp, *params, event.pk],
    )


def _timeline_title(campaign_name: str, event: CampaignEvent, status: str, path: str | None) -> str:
    outcome = f" → {path}" if path else ""
    failed = " (failed)" if status == LogStatus.FAILED else ""
    return f"Campaign “{campaign_name}”: {event.label}{outcome}{failed}"


def _due_now(event: CampaignEvent, now: dt.datetime) -> bool:
    """Whether an event reached now runs now for everyone (no window to check per contact, no wait)."""
    return not event.has_window and trigger_at(event=event, now=now, tz="") <= now


def _follow(
    cursor: Any, event: CampaignEvent, *, now: dt.datetime, summary: RunSummary, chain: bool, source: Source
) -> None:
    """The children of ``event`` on the paths the batch took: run now (``chain``) or scheduled."""
    for child in event.children.all():
        on_path = " AND b.path = %s" if child.path else ""
        path_params = [child.path] if child.path else []
        if chain and _due_now(child, now):
            cursor.execute(
                f"INSERT INTO {BATCH} (event_id, log_id, contact_id, entry, path) "  # noqa: S608
                f"SELECT %s, NULL, b.contact_id, b.entry, NULL FROM {BATCH} b WHERE b.event_id = %s{on_path} "
                f"AND NOT EXISTS (SELECT 1 FROM {table(CampaignEventLog)} l "
                "WHERE l.event_id = %s AND l.contact_id = b.contact_id AND l.entry = b.entry)",
                [child.pk, event.pk, *path_params, child.pk],
            )
            if cursor.rowcount:
                chained = Source(kind="chain", event=child, limit=0, priority=source.priority)
                _run(cursor, child, now=now, summary=summary, logged=False, source=chained)
            continue
        contacts = ""
        if child.has_window:  # the moment depends on the contact's time zone: one CASE over the batch's zones
            zones = _timezones(cursor, event, child.path)
            if not zones:
                continue  # nobody took this path
            when, when_params = _by_timezone({zone: trigger_at(event=child, now=now, tz=zone) for zone in zones})
            contacts = f"JOIN {table(Contact)} c ON c.id = b.contact_id "
        else:
            when, when_params = "%s", [db_time(trigger_at(event=child, now=now, tz=""))]
        cursor.execute(
            f"INSERT INTO {table(CampaignEventLog)} (event_id, campaign_id, contact_id, entry, status, "  # noqa: S608
            "trigger_at, detail, created_at) "
            f"SELECT %s, %s, b.contact_id, b.entry, %s, {when}, '', %s FROM {BATCH} b "
            f"{contacts}WHERE b.event_id = %s{on_path} "
            "ON CONFLICT (event_id, contact_id, entry) DO NOTHING",
            [child.pk, child.campaign_id, LogStatus.SCHEDULED, *when_params, db_time(now), event.pk, *path_params],
        )
