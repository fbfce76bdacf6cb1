"""The campaign engine: membership sync, first events, and every due event run set-based, a batch per event.

``process_campaigns`` (one engine run, under the lock ``campaigns.services`` holds) syncs each published campaign's
members, schedules first events that wait (an interval, a date, a window), runs the first events due now straight
from the membership, sends decisions whose wait is over down their no path, and runs every due scheduled log; each
batch runs what follows it in the same transaction (``steps``). Nothing is decided per contact in Python: a batch is
a temporary table, and every statement takes it as its set.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.utils import timezone

from contacts.models import Contact

from .. import waits
from ..models import Campaign, CampaignEvent, CampaignEventLog, CampaignMember, LogStatus
from ..windows import trigger_at
from .members import member_add, member_remove, members_sync
from .rules import CONTACT_FIELDS, DECISION_KINDS, field_condition_q, reply_matches
from .sql import db_time, table
from .steps import RunSummary, Source, campaign_send_ref, step

__all__ = [
    "CONTACT_FIELDS",
    "DECISION_KINDS",
    "DEFAULT_BATCH",
    "RunSummary",
    "campaign_send_ref",
    "contact_events_run",
    "decisions_time_out",
    "field_condition_q",
    "member_add",
    "member_remove",
    "members_sync",
    "process_campaigns",
    "reply_matches",
    "reply_received",
    "roots_schedule",
    "stale_running_reset",
]

DEFAULT_BATCH = 5000


def stale_after_default() -> dt.timedelta:
    return dt.timedelta(seconds=getattr(settings, "CAMPAIGNS_STALE_RUNNING_SECONDS", 600))


def _runs_now(event: CampaignEvent, now: dt.datetime) -> bool:
    return not event.has_window and trigger_at(event=event, now=now, tz="") <= now


def roots_schedule(*, campaign: Campaign, now: dt.datetime | None = None) -> int:
    """Schedule the first events that wait (an interval, a date, a window) for members who do not have them yet: one
    INSERT … SELECT per event (per contact time zone for a window: the moment depends on it). First events due now
    are not scheduled: ``process_campaigns`` runs them straight from the membership."""
    now = now or timezone.now()
    total = 0
    for event in campaign.events.filter(parent__isnull=True):
        if _runs_now(event, now):
            continue
        groups: list[tuple[str | None, dt.datetime]]
        if event.has_window:
            zones = (
                Contact.objects.filter(
                    campaign_memberships__campaign=campaign, campaign_memberships__manually_removed=False
                )
                .values_list("timezone", flat=True)
                .distinct()
            )
            groups = [(zone, trigger_at(event=event, now=now, tz=zone)) for zone in zones]
        else:
            groups = [(None, trigger_at(event=event, now=now, tz=""))]
        for zone, when in groups:
            zone_clause = "AND c.timezone = %s" if zone is not None else ""
            with connection.cursor() as cursor:
                cursor.execute(
                    f"""
                    INSERT INTO {table(CampaignEventLog)} (event_id, campaign_id, contact_id, entry, status,
                                                           trigger_at, detail, created_at)
                    SELECT %s, %s, m.contact_id, m.entry, %s, %s, '', %s
                    FROM {table(CampaignMember)} m
                    JOIN {table(Contact)} c ON c.id = m.contact_id
                    WHERE m.campaign_id = %s AND m.manually_removed = %s {zone_clause}
                    ON CONFLICT (event_id, contact_id, entry) DO NOTHING
                    """,  # noqa: S608 - table names come from model metadata, values are parameters
                    [
                        event.pk,
                        campaign.pk,
                        LogStatus.SCHEDULED,
                        db_time(when),
                        db_time(now),
                        campaign.pk,
                        False,
                        *([zone] if zone is not None else []),
                    ],
                )
                total += max(cursor.rowcount, 0)
    return total


def stale_running_reset(*, older_than: dt.timedelta, campaign_id: int | None = None) -> int:
    """Return logs left ``running`` to ``scheduled``. The engine no longer leaves any (a batch commits whole or not
    at all), but a log claimed by an engine before this one, or by hand, still gets run."""
    qs = CampaignEventLog.objects.filter(status=LogStatus.RUNNING, claimed_at__lte=timezone.now() - older_than)
    if campaign_id:
        qs = qs.filter(campaign_id=campaign_id)
    return qs.update(status=LogStatus.SCHEDULED, claimed_at=None)


def _events_with(
    status: str, now: dt.datetime, *, campaign_id: int | None = None, contact_id: int | None = None
) -> list[CampaignEvent]:
    """The events of published campaigns that have logs in ``status`` due by ``now``."""
    logs = CampaignEventLog.objects.filter(status=status, trigger_at__lte=now, campaign__is_published=True)
    if campaign_id:
        logs = logs.filter(campaign_id=campaign_id)
    if contact_id:
        logs = logs.filter(contact_id=contact_id)
    ids = set(logs.order_by().values_list("event_id", flat=True).distinct())
    return list(CampaignEvent.objects.filter(pk__in=ids).select_related("campaign", "text_message").order_by("pk"))


def _drain(
    source: Source,
    *,
    summary: RunSummary,
    on_batch: Callable[[], bool] | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Batches from one source until it gives no more (or ``on_batch`` says stop); returns the rows taken. Each batch
    runs at the moment it starts, or at ``now`` when the caller gives one (a time-out run for a given moment)."""
    total, after = 0, 0
    while True:
        count, last = step(dataclasses.replace(source, after=after), now=now or timezone.now(), summary=summary)
        if not count:
            return total
        total, after = total + count, last
        if on_batch is not None and not on_batch():
            return total


def decisions_time_out(
    *, batch: int, now: dt.datetime | None = None, campaign_id: int | None = None, summary: RunSummary
) -> int:
    """Send decisions whose wait is over down their no path, a batch per event at a time (at ``now`` when given,
    else each batch at the moment it starts)."""
    given, now = now, now or timezone.now()
    # First the waits whose text has left since (a safety net for the sending engine's own signal, campaigns.waits).
    waits.waits_start(now=now, campaign_id=campaign_id)
    return sum(
        _drain(Source(kind="timeout", event=event, limit=batch), summary=summary, now=given)
        for event in _events_with(LogStatus.WAITING, now, campaign_id=campaign_id)
    )


def reply_received(
    *,
    contact_id: int,
    body: str,
    now: dt.datetime | None = None,
    button_text: str = "",
    button_payload: str = "",
) -> list[int]:
    """A reply from this contact: decisions waiting for it take their yes path now. Returns the logs moved on; what
    follows them is scheduled for now (``contact_events_run`` runs it at once, from a task). ``button_*``: the reply
    is a tap on a quick-reply button (WhatsApp), for the button decisions."""
    now = now or timezone.now()
    waiting = CampaignEventLog.objects.filter(
        contact_id=contact_id,
        status=LogStatus.WAITING,
        campaign__is_published=True,
        event__kind__in=DECISION_KINDS,
    ).select_related("event", "event__campaign")
    moved: list[int] = []
    for log in waiting:  # read outside a transaction: most replies find nothing waiting, and cost one query
        if not reply_matches(log.event, body, button_text=button_text, button_payload=button_payload):
            continue
        # The log is taken only if it is still waiting: the timeout or another reply may have got there first.
        source = Source(kind="reply", event=log.event, limit=1, log_id=log.pk, priority=True)
        count, _ = step(source, now=now, summary=RunSummary())
        if count:
            moved.append(log.pk)
    return moved


def contact_events_run(*, contact_id: int, batch: int = 100) -> RunSummary:
    """Run what is due for one contact now (after a reply), without waiting for the next engine run."""
    summary = RunSummary()
    for _ in range(50):  # a chain of scheduled events is finite; the bound only guards against a cycle in data
        events = _events_with(LogStatus.SCHEDULED, timezone.now(), contact_id=contact_id)
        taken = sum(
            step(
                # What a reply made due is a follow-up to it: ahead of bulk on the sender.
                Source(kind="claim", event=event, limit=batch, contact_id=contact_id, priority=True),
                now=timezone.now(),
                summary=summary,
            )[0]
            for event in events
        )
        if not taken:
            break
    return summary


def process_campaigns(
    *,
    campaign_id: int | None = None,
    batch: int = DEFAULT_BATCH,
    stale_after: dt.timedelta | None = None,
    max_batches: int = 100_000,
    on_batch: Callable[[RunSummary], None] | None = None,
) -> RunSummary:
    """One engine run: reset stale claims, sync members, schedule first events that wait, time out decisions, run
    the first events due now and every due log, a batch (of at most ``batch`` contacts) at a time."""
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

    def counted() -> bool:
        summary.batches += 1
        if on_batch:
            on_batch(summary)
        return summary.batches < max_batches

    decisions_time_out(batch=batch, campaign_id=campaign_id, summary=summary)
    while summary.batches < max_batches:
        now = timezone.now()
        roots = CampaignEvent.objects.filter(campaign__in=campaigns, parent__isnull=True).select_related(
            "campaign", "text_message"
        )
        sources = [Source(kind="root", event=event, limit=batch) for event in roots if _runs_now(event, now)]
        sources += [
            Source(kind="claim", event=event, limit=batch)
            for event in _events_with(LogStatus.SCHEDULED, now, campaign_id=campaign_id)
        ]
        if not sum(_drain(source, summary=summary, on_batch=counted) for source in sources):
            break
    return summary
