"""Crash recovery of the outbound log (beat, every minute; safe to run beside working workers).

- A row stuck in ``sending`` whose provider was never called goes back to the queue.
- One whose provider may have been called becomes ``unknown``: it is never sent again automatically; its status
  callback or reconciliation (``texts.reconcile``) may still tell what became of it.
- A queued row long past due whose task was lost (with a worker, or with the broker) is enqueued again. Parked rows
  are not lost: they wait in their sender's line for the pacer, which has no task for them by design.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from ..models import OutboundMessage, Schedule, Status
from .outbound import enqueue_after_commit, outbound_transition


@dataclass
class SweepResult:
    requeued: list[int]
    unknown: list[int]
    reenqueued: list[int]


def outbound_sweep(*, stale_after: float | None = None) -> SweepResult:
    """Recover from workers that died (see the module docstring)."""
    stale = float(stale_after if stale_after is not None else getattr(settings, "SMS_SENDING_STALE_SECONDS", 300))
    now = timezone.now()
    cutoff = now - dt.timedelta(seconds=stale)
    stuck = OutboundMessage.objects.filter(status=Status.SENDING, sending_at__lt=cutoff)
    never_called = list(stuck.filter(provider_called_at__isnull=True).values_list("pk", flat=True))
    requeued = outbound_transition(
        message_ids=never_called,
        to=Status.QUEUED,
        extra=Q(provider_called_at__isnull=True),
        next_attempt_at=now,
        claim=None,
        schedule=Schedule.NONE,
    )
    maybe_called = list(stuck.filter(provider_called_at__isnull=False).values_list("pk", flat=True))
    unknown = outbound_transition(
        message_ids=maybe_called,
        to=Status.UNKNOWN,
        extra=Q(provider_called_at__isnull=False, sending_at__lt=cutoff),
        error_code="worker_lost",
        error_message="The worker stopped after calling the provider; the message may or may not have been sent.",
    )
    # Queued rows long past due: their task was lost with a worker (or never reached the broker), or it is still
    # waiting behind a large backlog. Their due time moves to now in the same statement, so a backlog still in the
    # broker is queued again once per stale period rather than at every sweep (a claim takes a row only once either
    # way: a duplicate task costs a wasted claim, not a second message).
    table = OutboundMessage._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET next_attempt_at = %s WHERE status = %s AND schedule <> %s "  # noqa: S608
            "AND next_attempt_at < %s RETURNING id, priority",
            [
                connection.ops.adapt_datetimefield_value(now),
                Status.QUEUED,
                Schedule.PARKED,
                connection.ops.adapt_datetimefield_value(cutoff),
            ],
        )
        orphan_rows = cursor.fetchall()
    orphans = sorted(int(pk) for pk, _ in orphan_rows)
    again = sorted(set(requeued) | set(orphans))
    by_priority = {int(pk): bool(priority) for pk, priority in orphan_rows}
    by_priority.update(OutboundMessage.objects.filter(pk__in=requeued).values_list("pk", "priority"))
    with transaction.atomic():
        for priority in (True, False):
            enqueue_after_commit([pk for pk in again if by_priority.get(pk) is priority], priority=priority)
    return SweepResult(requeued=requeued, unknown=unknown, reenqueued=orphans)
