"""Frequency caps of marketing texts, checked when a worker claims a chunk (``dispatch.outbound_claim``).

``SMS_MARKETING_CAP_PER_DAY`` / ``SMS_MARKETING_CAP_PER_WEEK`` (0: off): at most that many marketing texts per
contact and channel in any 24 hours / 7 days, counting the messages handed to the provider (``provider_called_at``)
and those claimed for it right now (``sending``). Transactional texts and test sends are never capped nor counted.

Race-free across workers: inside the claim's transaction, the chunk's marketing contacts are locked first
(``pg_advisory_xact_lock``, in contact order), then one statement counts each contact's window, with a snapshot
taken after the locks: a worker claiming for the same contact waits for the other's claim to commit and then sees
its rows ``sending``. A message over the cap is deferred to when its window has room (``defer``: back to the queue
with ``next_attempt_at``, parked for the pacer when that is far) or fails (``skip``); both carry the error code
``frequency_cap`` and the reason on the outbound log.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from ..models import OutboundMessage, Schedule, Source, Status, TextMessage

CAP_CODE = "frequency_cap"
DAY, WEEK = dt.timedelta(days=1), dt.timedelta(days=7)
_LOCK_CLASS = 17017  # the advisory lock namespace of the caps (the first key of the two-key form)


@dataclass(frozen=True)
class Caps:
    per_day: int
    per_week: int
    action: str  # "defer" | "skip"

    @property
    def on(self) -> bool:
        return self.per_day > 0 or self.per_week > 0


def caps() -> Caps:
    return Caps(
        per_day=max(0, int(getattr(settings, "SMS_MARKETING_CAP_PER_DAY", 0) or 0)),
        per_week=max(0, int(getattr(settings, "SMS_MARKETING_CAP_PER_WEEK", 0) or 0)),
        action=str(getattr(settings, "SMS_MARKETING_CAP_ACTION", "defer") or "defer"),
    )


@dataclass
class Over:
    """The chunk's messages over a cap: deferred to a time, or skipped, each with its reason."""

    deferred: dict[int, tuple[dt.datetime, str]] = field(default_factory=dict)
    skipped: dict[int, str] = field(default_factory=dict)

    @property
    def ids(self) -> set[int]:
        return set(self.deferred) | set(self.skipped)


def _marketing_sql() -> str:
    """Rows of outbound ``m`` joined to text ``t`` that are marketing (the category) and not test sends."""
    return f"t.category = '{TextMessage.Category.MARKETING}' AND m.source <> '{Source.TEST}'"


def caps_over(*, message_ids: list[int], limits: Caps, now: dt.datetime) -> Over:
    """Lock the chunk's marketing contacts and find its messages over a cap (the caller holds the rows' locks and
    runs this inside the claim's transaction)."""
    over = Over()
    if not message_ids or not limits.on:
        return over
    outbound, texts = OutboundMessage._meta.db_table, TextMessage._meta.db_table
    ids = ", ".join(str(int(i)) for i in message_ids)
    marketing = _marketing_sql()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"SELECT count(pg_advisory_xact_lock({_LOCK_CLASS}, (x.contact_id % 2147483647)::int)) FROM ("  # noqa: S608
                f"SELECT DISTINCT m.contact_id FROM {outbound} m JOIN {texts} t ON t.id = m.text_message_id "
                f"WHERE m.id IN ({ids}) AND m.contact_id IS NOT NULL AND {marketing} ORDER BY m.contact_id) x"
            )
        day_start, week_start = now - DAY, now - WEEK
        since = week_start if limits.per_week else day_start
        # A new snapshot, taken after the locks: the claims committed meanwhile are counted.
        cursor.execute(
            f"""
WITH c AS (
  SELECT m.id, m.contact_id, m.channel,
    ROW_NUMBER() OVER (PARTITION BY m.contact_id, m.channel ORDER BY m.id) AS n
  FROM {outbound} m JOIN {texts} t ON t.id = m.text_message_id
  WHERE m.id IN ({ids}) AND m.contact_id IS NOT NULL AND {marketing}
), h AS (
  SELECT m.contact_id, m.channel, COALESCE(m.provider_called_at, m.sending_at) AS at
  FROM {outbound} m JOIN {texts} t ON t.id = m.text_message_id
  WHERE m.contact_id IN (SELECT contact_id FROM c) AND m.id NOT IN ({ids}) AND {marketing}
    AND (m.provider_called_at >= %(since)s OR (m.status = '{Status.SENDING}' AND m.sending_at >= %(since)s))
)
SELECT c.id, c.n,
  (SELECT count(*) FROM h WHERE h.contact_id = c.contact_id AND h.channel = c.channel AND h.at >= %(day)s),
  (SELECT min(h.at) FROM h WHERE h.contact_id = c.contact_id AND h.channel = c.channel AND h.at >= %(day)s),
  (SELECT count(*) FROM h WHERE h.contact_id = c.contact_id AND h.channel = c.channel AND h.at >= %(week)s),
  (SELECT min(h.at) FROM h WHERE h.contact_id = c.contact_id AND h.channel = c.channel AND h.at >= %(week)s)
FROM c
""",  # noqa: S608 (names and constants from the models, ids are ints)
            {"since": _db(since), "day": _db(day_start), "week": _db(week_start)},
        )
        rows = cursor.fetchall()
    for pk, n, day_count, day_oldest, week_count, week_oldest in rows:
        reasons, until = [], now
        if limits.per_day and int(n) + int(day_count) > limits.per_day:
            reasons.append(f"{limits.per_day} a day")
            until = max(
                until, _aware(day_oldest) + DAY if day_oldest and int(day_count) >= limits.per_day else now + DAY
            )
        if limits.per_week and int(n) + int(week_count) > limits.per_week:
            reasons.append(f"{limits.per_week} a week")
            full = week_oldest and int(week_count) >= limits.per_week
            until = max(until, _aware(week_oldest) + WEEK if full else now + WEEK)
        if not reasons:
            continue
        cap = " and ".join(reasons)
        if limits.action == "skip":
            over.skipped[int(pk)] = f"Skipped: the contact is at the marketing cap ({cap})."
        else:
            over.deferred[int(pk)] = (until, f"Deferred to {until:%Y-%m-%d %H:%M} UTC by the marketing cap ({cap}).")
    return over


def caps_defer(*, over: Over, now: dt.datetime) -> dict[int, float]:
    """Put the deferred rows back in the queue, due when their window has room: parked (the pacer's orphan check
    queues them again when due) beyond ``SMS_WAKE_HORIZON_SECONDS``, else with a task then. Returns the countdowns
    of the rows that need a task."""
    horizon = float(getattr(settings, "SMS_WAKE_HORIZON_SECONDS", 120))
    countdowns: dict[int, float] = {}
    for pk, (until, reason) in over.deferred.items():
        wait = (until - now).total_seconds()
        schedule = Schedule.PARKED if wait > horizon else Schedule.NONE
        OutboundMessage.objects.filter(pk=pk, status=Status.QUEUED).update(
            next_attempt_at=until, schedule=schedule, error_code=CAP_CODE, error_message=reason, updated_at=now
        )
        if schedule == Schedule.NONE:
            countdowns[pk] = max(0.0, wait)
    return countdowns


def _db(value: dt.datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def _aware(value: Any) -> dt.datetime:
    if isinstance(value, str):  # SQLite answers text
        value = dt.datetime.fromisoformat(value)
    return value if timezone.is_aware(value) else timezone.make_aware(value, dt.UTC)
