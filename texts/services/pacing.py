"""The pacer: each sender's parked messages get the sender's free capacity, oldest first (beat, every second).

A bulk message that could not have a slot within the horizon when a worker claimed it is parked: ``queued`` with
``schedule = parked``, in its sender's line (ordered by ``next_attempt_at``, which a parked row keeps), and no task in
the broker. Each tick asks the sender's limiter for the capacity of the next ``SMS_PACE_WINDOW_SECONDS`` that nobody
has taken (priority sends and earlier hand-outs come first), hands that many segments to the oldest parked messages
(``schedule = paced``) and enqueues them in groups timed to their slots, so a worker claims each one when it may go.
Capacity that found no message is given back at once.

So the line moves at exactly the sender's rate, never faster, whatever the number of workers; a broadcast of a
million messages on a one-message-a-second number costs one claim a second, not a million tasks waiting in workers;
and a message deferred by quiet hours or a long backoff is woken by the same tick when its time comes.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from providers.base import every_sender
from providers.ratelimit import spaced_rate
from smsapp.core.locks import job_lock

from ..models import OutboundMessage, Schedule, Status
from .outbound import enqueue_after_commit

ORPHAN_CHECK_SECONDS = 30.0  # after a tick found no parked rows of a sender no longer configured, look again after this
ORPHANS_PER_TICK = 1000


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


@dataclass
class PaceResult:
    handed: dict[str, int] = field(default_factory=dict)  # sender -> messages handed a slot
    orphans: int = 0  # parked on a sender no longer configured: queued again to choose another
    busy: bool = False  # another tick held the lock


def outbound_pace(*, get_config: Callable[[], Any] | None = None, limiter: Any = None) -> PaceResult:
    """One tick of the pacer (see the module docstring); safe to run from several machines (one lock)."""
    if get_config is None or limiter is None:
        from providers.ratelimit import get_limiter
        from providers.registry import get_config as config_default

        get_config = get_config or config_default
        limiter = limiter or get_limiter()
    result = PaceResult()
    with job_lock("texts-outbound-pacer", ttl=30) as renew:
        if renew is None:
            result.busy = True
            return result
        config = get_config()
        senders = every_sender(config)
        for sender_config in senders:
            count = _pace_sender(sender_config, limiter=limiter)
            if count:
                result.handed[sender_config.sender.value] = count
        result.orphans = _wake_orphans([s.sender.value for s in senders])
    return result


def _pace_sender(sender_config: Any, *, limiter: Any) -> int:
    rate = float(sender_config.rate_per_second)
    window = float(_setting("SMS_PACE_WINDOW_SECONDS", 2.0))
    most = max(1, min(int(_setting("SMS_PACE_MAX_PER_TICK", 5000)), math.ceil(rate * window)))
    table = OutboundMessage._meta.db_table
    now = timezone.now()
    lock = " FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
    with transaction.atomic(), connection.cursor() as cursor:
        # The sender's line, oldest first: a range scan of the partial index outbound_parked.
        cursor.execute(
            f"SELECT id, priority, COALESCE(segments, 1) FROM {table} "  # noqa: S608 (names from models)
            "WHERE status = %s AND schedule = %s AND sender = %s AND next_attempt_at <= %s "
            f"ORDER BY next_attempt_at, id LIMIT %s{lock}",
            [Status.QUEUED, Schedule.PARKED, sender_config.sender.value, _db(now), most],
        )
        line = cursor.fetchall()
        if not line:
            return 0
        handout = limiter.pace(
            sender_key=sender_config.key,
            rate_per_second=rate,
            window=window,
            limit=sum(max(1, int(cost)) for _, _, cost in line),
        )
        chosen: list[tuple[int, bool, float]] = []  # id, priority, seconds after the hand-out's start
        used = 0
        slot_rate = spaced_rate(rate)  # the rate the limiter spaces its slots at
        for pk, priority, cost in line:
            cost = max(1, int(cost))
            if used + cost > handout.count:
                break
            chosen.append((int(pk), bool(priority), used / slot_rate))
            used += cost
        if handout.count > used:
            limiter.give_back(sender_key=sender_config.key, rate_per_second=rate, count=handout.count - used)
        if not chosen:
            return 0
        ids = [pk for pk, _, _ in chosen]
        # PostgreSQL: the rows are this transaction's (FOR UPDATE above), so by primary key alone; a status or
        # schedule in the WHERE made it walk outbound_parked through the whole line when the statistics did not know
        # the parked rows (right after a fan-out; tests/texts/test_claim_plan.py). SQLite takes no row locks.
        still = {} if lock else {"status": Status.QUEUED, "schedule": Schedule.PARKED}
        OutboundMessage.objects.filter(pk__in=ids, **still).update(schedule=Schedule.PACED, updated_at=now)
        _enqueue_timed(chosen, start=handout.start)
    return len(chosen)


def _enqueue_timed(chosen: list[tuple[int, bool, float]], *, start: float) -> None:
    """Tasks timed to the slots: the messages of each tenth of a second (or of each slot, if slower) go together."""
    bucket = float(_setting("SMS_PACE_BUCKET_SECONDS", 0.1))
    lead = start - time.time()
    groups: dict[tuple[bool, int], list[int]] = defaultdict(list)
    for pk, priority, offset in chosen:
        groups[(priority, int(max(0.0, lead + offset) // bucket))].append(pk)
    for (priority, slot), ids in groups.items():
        enqueue_after_commit(ids, priority=priority, countdown=slot * bucket)


def _wake_orphans(configured: list[str]) -> int:
    """Parked rows whose sender is not configured any more are queued again as new, so that a worker chooses a
    sender that exists (they then join that sender's line). Looked for at every tick while there are some, and every
    ORPHAN_CHECK_SECONDS once there were none."""
    if cache.get("smsapp:pacer:no-orphans"):
        return 0
    now = timezone.now()
    parked = OutboundMessage.objects.filter(
        status=Status.QUEUED, schedule=Schedule.PARKED, next_attempt_at__lte=now
    ).exclude(sender__in=configured)
    rows = list(parked.order_by("next_attempt_at", "id").values_list("pk", "priority")[:ORPHANS_PER_TICK])
    if not rows:
        cache.set("smsapp:pacer:no-orphans", 1, timeout=ORPHAN_CHECK_SECONDS)
        return 0
    ids = [pk for pk, _ in rows]
    with transaction.atomic():
        woken = set(
            OutboundMessage.objects.filter(pk__in=ids, status=Status.QUEUED, schedule=Schedule.PARKED)
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)
        )
        OutboundMessage.objects.filter(pk__in=woken).update(schedule=Schedule.NONE, updated_at=now)
        for priority in (True, False):
            enqueue_after_commit(sorted(pk for pk, p in rows if pk in woken and p is priority), priority=priority)
    return len(woken)


def _db(value: Any) -> Any:
    return connection.ops.adapt_datetimefield_value(value)
