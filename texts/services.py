"""Writes of the texts app: text messages, and the outbound pipeline (enqueue, claim, send, outcome, sweep).

The pipeline in one paragraph: ``outbound_enqueue`` inserts one ``queued`` row per recipient in one INSERT … SELECT
and, after commit, enqueues tasks carrying batches of ids. A task calls ``outbound_process_batch``, which claims its
rows (``queued -> sending`` with a fresh claim token), re-checks Do Not Contact and quiet hours, renders, picks the
sender, and then for each row: waits for the sender's rate-limit slot, stamps ``provider_called_at`` in its own
committed UPDATE (guarded by the claim token), calls the provider and writes the outcome with a conditional UPDATE.
``outbound_sweep`` (beat, every minute) requeues rows stuck in ``sending`` whose provider was never called, marks
``unknown`` those whose provider may have been, and re-enqueues queued rows whose task was lost.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Coalesce, Now
from django.utils import timezone

from contacts.models import Contact, DoNotContact, TimelineEvent
from contacts.services import dnc_active, dnc_add, timeline_record_many
from providers.segments import MAX_BODY_CHARACTERS, count_segments

from . import quiet_hours
from .models import TIMESTAMP_FIELD, OutboundMessage, Source, Status, TextMessage
from .personalise import personalise_render
from .senders import NoSender, choose_sender, last_numbers
from .signals import message_status_changed

logger = logging.getLogger(__name__)

BATCH_SIZE = 200  # ids per task
CLAIM_CHUNK = 20  # rows a worker holds in `sending` at once


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


# State changes


def outbound_transition(*, message_ids: Iterable[int], to: str, extra: Q | None = None, **fields: Any) -> list[int]:
    """Move messages to ``to`` where their current status allows it; returns the ids that moved.

    One conditional UPDATE: a message in a status that does not allow the move (a later one, or one another process
    just wrote) is left as it is.
    """
    ids = list(message_ids)
    if not ids:
        return []
    now = timezone.now()
    values = {"status": to, TIMESTAMP_FIELD[to]: now, "updated_at": now, **fields}
    allowed = Q(status__in=OutboundMessage.allowed_from(to)) & (extra if extra is not None else Q())
    with transaction.atomic():
        # Lock first so the ids we report are exactly the rows the UPDATE changes (a concurrent writer waits).
        moved = list(
            OutboundMessage.objects.filter(allowed, pk__in=ids).select_for_update().values_list("pk", flat=True)
        )
        if moved:
            OutboundMessage.objects.filter(allowed, pk__in=moved).update(**values)
    if moved:
        transaction.on_commit(lambda: message_status_changed.send(sender=OutboundMessage, message_ids=moved, status=to))
    return moved


# Enqueue


def _enqueue_tasks(ids: list[int], *, priority: bool, countdown: float = 0) -> None:
    from .tasks import outbound_send_batch

    queue = "sms_priority" if priority else "sms_bulk"
    for start in range(0, len(ids), BATCH_SIZE):
        chunk = ids[start : start + BATCH_SIZE]
        outbound_send_batch.apply_async(args=(chunk,), queue=queue, countdown=max(0.0, countdown))


def enqueue_after_commit(ids: list[int], *, priority: bool, countdown: float = 0) -> None:
    if ids:
        transaction.on_commit(lambda: _enqueue_tasks(ids, priority=priority, countdown=countdown))


def outbound_enqueue(
    *,
    text_message: TextMessage,
    contacts: QuerySet[Contact] | Iterable[int],
    source: str,
    source_ref: str = "",
    priority: bool = False,
) -> int:
    """Queue ``text_message`` for each contact that has a mobile and is not Do Not Contact; returns rows created.

    One INSERT … SELECT; a broadcast row that exists already is skipped by the partial unique constraint
    (``ON CONFLICT DO NOTHING``). Tasks carrying batches of ids go to ``sms_priority`` or ``sms_bulk`` after commit.
    """
    if not isinstance(contacts, QuerySet):
        contacts = Contact.objects.filter(pk__in=list(contacts))
    subquery, sub_params = contacts.values("pk").query.sql_with_params()
    now = timezone.now()
    table = OutboundMessage._meta.db_table
    sql = f"""
        INSERT INTO {table} (contact_id, to_number, sender, sender_kind, text_message_id, source, source_ref,
            priority, body, encoding, status, error_code, error_message, attempts, next_attempt_at, price_unit,
            queued_at, updated_at)
        SELECT c.id, c.mobile, '', '', %s, %s, %s, %s, '', '', %s, '', '', 0, %s, '', %s, %s
        FROM {Contact._meta.db_table} c
        WHERE c.id IN ({subquery})
          AND c.mobile IS NOT NULL AND c.mobile <> ''
          AND NOT EXISTS (
            SELECT 1 FROM {DoNotContact._meta.db_table} d
            WHERE d.contact_id = c.id AND d.channel = 'sms' AND d.lifted_at IS NULL)
        ORDER BY c.id
        ON CONFLICT DO NOTHING
        RETURNING id
    """  # noqa: S608 - table names come from models, values are parameters
    # Raw SQL: adapt the timestamp as the ORM does (SQLite stores naive UTC text and compares it as text).
    stamp = connection.ops.adapt_datetimefield_value(now)
    params = [text_message.pk, source, source_ref, priority, Status.QUEUED, stamp, stamp, stamp, *sub_params]
    if connection.vendor == "sqlite":
        # SQLite's parser needs a WHERE on INSERT … SELECT … ON CONFLICT to tell it from a join's ON.
        sql = sql.replace("ORDER BY c.id", "AND 1 ORDER BY c.id")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = [row[0] for row in cursor.fetchall()]
        enqueue_after_commit(sorted(ids), priority=priority)
    return len(ids)


def test_send(*, text_message: TextMessage, to_number: str, body: str | None = None) -> OutboundMessage:  # noqa: PT028
    """Send ``text_message`` (or an unsaved ``body``) to any number now, on the priority queue.

    The number must be E.164 already (the form validates it). A contact who owns it personalises the body.
    """
    contact = Contact.objects.filter(mobile=to_number).first()
    with transaction.atomic():
        message = OutboundMessage.objects.create(
            contact=contact,
            to_number=to_number,
            text_message=text_message if text_message.pk else None,
            source=Source.TEST,
            priority=True,
            body=body if body is not None else "",
            next_attempt_at=timezone.now(),
        )
        enqueue_after_commit([message.pk], priority=True)
    return message


# Claim and send


@dataclass
class BatchOutcome:
    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    deferred: list[int] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)


def outbound_claim(*, message_ids: list[int]) -> tuple[uuid.UUID, list[OutboundMessage]]:
    """Claim the due, queued rows among ``message_ids`` for this worker (``queued -> sending``).

    ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL lets two workers holding the same ids split them instead of
    waiting; the UPDATE is conditional on ``queued`` in any case.
    """
    token = uuid.uuid4()
    now = timezone.now()
    with transaction.atomic():
        due = OutboundMessage.objects.filter(pk__in=message_ids, status=Status.QUEUED).filter(
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
        )
        locked = list(due.select_for_update(skip_locked=True).values_list("pk", flat=True))
        OutboundMessage.objects.filter(pk__in=locked, status=Status.QUEUED).update(
            status=Status.SENDING, sending_at=now, updated_at=now, claim=token, provider_called_at=None
        )
    rows = list(
        OutboundMessage.objects.filter(claim=token, status=Status.SENDING)
        .select_related("contact", "text_message")
        .order_by("pk")
    )
    return token, rows


def _fail_rows(rows: list[OutboundMessage], *, code: str, message: str, outcome: BatchOutcome) -> None:
    moved = outbound_transition(
        message_ids=[r.pk for r in rows], to=Status.FAILED, error_code=code, error_message=message, claim=None
    )
    outcome.failed.extend(moved)


def _defer(rows: list[OutboundMessage], *, until: dt.datetime, outcome: BatchOutcome) -> None:
    moved = outbound_transition(message_ids=[r.pk for r in rows], to=Status.QUEUED, next_attempt_at=until, claim=None)
    if moved:
        countdown = (until - timezone.now()).total_seconds()
        enqueue_after_commit(moved, priority=rows[0].priority, countdown=countdown)
    outcome.deferred.extend(moved)


def _retry_delay(attempts: int) -> float:
    """Exponential backoff with full jitter: base * 2^(attempt-1), capped, times a random factor in [0.5, 1]."""
    base = float(_setting("SMS_RETRY_BASE_SECONDS", 30))
    cap = float(_setting("SMS_RETRY_MAX_SECONDS", 3600))
    delay = min(cap, base * (2 ** max(0, attempts - 1)))
    return delay * (0.5 + random.random() / 2)


def _render(row: OutboundMessage) -> str:
    # A body given at enqueue (a test of unsaved editor text, an API send) wins over the text message's; rendering
    # a body rendered by an earlier attempt again changes nothing, since it holds no tokens any more.
    template = row.body or (row.text_message.body if row.text_message else "")
    if row.contact is None:
        return personalise_render(template, contact=_NoContact())
    return personalise_render(template, contact=row.contact)


class _NoContact:
    """Stands in for a missing contact when a test goes to a number nobody owns: every token takes its fallback."""

    custom_fields: dict[str, str] = {}

    def __getattr__(self, name: str) -> str:
        return ""


def outbound_process_batch(
    *,
    message_ids: list[int],
    get_provider: Callable[[], Any] | None = None,
    get_config: Callable[[], Any] | None = None,
    wait_for_slot: Callable[..., float] | None = None,
) -> BatchOutcome:
    """Claim, check, render and send a batch of outbound messages; write each outcome.

    The three callables default to the providers app (``registry.get_provider``, ``config.get_config``,
    ``ratelimit.wait_for_slot``); unit tests pass their own.
    """
    if get_provider is None or get_config is None or wait_for_slot is None:
        from providers.config import get_config as config_default
        from providers.ratelimit import wait_for_slot as wait_default
        from providers.registry import get_provider as provider_default

        get_provider = get_provider or provider_default
        get_config = get_config or config_default
        wait_for_slot = wait_for_slot or wait_default
    outcome = BatchOutcome()
    # Claim a few rows at a time: a row waits in `sending` only while its turn at the rate limiter is near, so the
    # sweeper's staleness threshold stays meaningful however slow the sender.
    for start in range(0, len(message_ids), CLAIM_CHUNK):
        token, rows = outbound_claim(message_ids=message_ids[start : start + CLAIM_CHUNK])
        if rows:
            _process_claimed(
                rows, token=token, outcome=outcome, get_provider=get_provider, get_config=get_config, wait=wait_for_slot
            )
    _record_timeline(outcome)
    return outcome


def _process_claimed(
    rows: list[OutboundMessage],
    *,
    token: uuid.UUID,
    outcome: BatchOutcome,
    get_provider: Callable[[], Any],
    get_config: Callable[[], Any],
    wait: Callable[..., float],
) -> None:
    rows = _drop_dnc(rows, outcome)
    rows = _apply_quiet_hours(rows, outcome)
    if not rows:
        return
    config = get_config()
    provider = get_provider()
    rows = _prepare(rows, senders=config.senders, outcome=outcome)
    callback = getattr(config, "status_callback_url", None)
    for row in rows:
        _send_one(row, token=token, provider=provider, callback=callback, wait_for_slot=wait, outcome=outcome)


def _drop_dnc(rows: list[OutboundMessage], outcome: BatchOutcome) -> list[OutboundMessage]:
    contact_ids = {r.contact_id for r in rows if r.contact_id}
    dnc = set(dnc_active().filter(contact_id__in=contact_ids).values_list("contact_id", flat=True))
    blocked = [r for r in rows if r.contact_id in dnc]
    if blocked:
        _fail_rows(blocked, code="do_not_contact", message="The contact is Do Not Contact for SMS.", outcome=outcome)
    return [r for r in rows if r.contact_id not in dnc]


def _apply_quiet_hours(rows: list[OutboundMessage], outcome: BatchOutcome) -> list[OutboundMessage]:
    now = timezone.now()
    start, end = quiet_hours.window()
    ready: list[OutboundMessage] = []
    later: dict[dt.datetime, list[OutboundMessage]] = defaultdict(list)
    for row in rows:
        if row.source == Source.TEST or not (row.text_message and row.text_message.is_marketing):
            ready.append(row)
            continue
        contact = row.contact
        zone = quiet_hours.contact_zone(
            timezone_name=contact.timezone if contact else "",
            mobile=row.to_number,
            country=contact.country if contact else "",
        )
        allowed = quiet_hours.next_allowed_send(now=now, zone=zone, start=start, end=end)
        if allowed <= now:
            ready.append(row)
        else:
            later[allowed].append(row)
    for until, group in later.items():
        _defer(group, until=until, outcome=outcome)
    return ready


def _prepare(rows: list[OutboundMessage], *, senders: Any, outcome: BatchOutcome) -> list[OutboundMessage]:
    """Render, count and choose the sender of each row; one bulk UPDATE for the batch."""
    pool = [s.sender.value for s in senders if s.sender.kind == "number"]
    last = last_numbers(contact_ids=[r.contact_id for r in rows if r.contact_id], pool_values=pool)
    ready: list[OutboundMessage] = []
    too_long: list[OutboundMessage] = []
    no_sender: dict[str, list[OutboundMessage]] = defaultdict(list)
    for row in rows:
        row.body = _render(row)
        if len(row.body) > MAX_BODY_CHARACTERS:
            too_long.append(row)
            continue
        info = count_segments(row.body)
        row.segments, row.encoding = info.segments, info.encoding
        country = (row.contact.country if row.contact else "") or _region(row.to_number)
        try:
            chosen = choose_sender(
                senders=senders,
                contact_id=row.contact_id,
                to_number=row.to_number,
                country=country,
                last=last.get(row.contact_id or 0, ""),
            )
        except NoSender as exc:
            no_sender[str(exc)].append(row)
            continue
        row.sender, row.sender_kind = chosen.sender.value, chosen.sender.kind
        row._sender_config = chosen  # type: ignore[attr-defined]
        ready.append(row)
    OutboundMessage.objects.bulk_update(rows, ["body", "segments", "encoding", "sender", "sender_kind"])
    if too_long:
        _fail_rows(
            too_long,
            code="too_long",
            message=f"After personalisation the message is over {MAX_BODY_CHARACTERS:,} characters.",
            outcome=outcome,
        )
    for reason, group in no_sender.items():
        _fail_rows(group, code="no_sender", message=reason, outcome=outcome)
    return ready


def _region(e164: str) -> str:
    from contacts.phones import region_of

    return region_of(e164)


def _mark_provider_called(row: OutboundMessage, token: uuid.UUID) -> bool:
    """Commit "this attempt may reach the provider" before the HTTP call; false when the row is no longer ours."""
    now = timezone.now()
    return bool(
        OutboundMessage.objects.filter(pk=row.pk, status=Status.SENDING, claim=token, provider_called_at=None).update(
            provider_called_at=now, attempts=F("attempts") + 1, updated_at=now
        )
    )


def _send_one(
    row: OutboundMessage,
    *,
    token: uuid.UUID,
    provider: Any,
    callback: str | None,
    wait_for_slot: Callable[..., float],
    outcome: BatchOutcome,
) -> None:
    from providers.base import ErrorKind, ProviderError, SendRequest

    sender_config = row._sender_config  # type: ignore[attr-defined]
    try:
        wait_for_slot(
            sender_key=sender_config.key,
            rate_per_second=sender_config.rate_per_second,
            cost=max(1, row.segments or 1),
            max_wait=float(_setting("SMS_RATE_MAX_WAIT_SECONDS", 30)),
        )
    except Exception as exc:
        if not hasattr(exc, "wait"):  # providers.ratelimit.RateLimitExceeded: the slot is too far away
            raise
        # Hand the row back rather than hold it (and a worker) for longer than the sweeper's threshold.
        until = timezone.now() + dt.timedelta(seconds=float(exc.wait))
        moved = outbound_transition(
            message_ids=[row.pk], to=Status.QUEUED, extra=Q(claim=token), next_attempt_at=until, claim=None
        )
        if moved:
            enqueue_after_commit(moved, priority=row.priority, countdown=float(exc.wait))
        outcome.deferred.extend(moved)
        return
    if not _mark_provider_called(row, token):
        outcome.skipped.append(row.pk)
        return
    mine = Q(claim=token)
    media = row.text_message.media_urls if row.text_message else []
    request = SendRequest(
        to=row.to_number,
        body=row.body,
        sender=sender_config.sender,
        media_urls=tuple(media),
        status_callback=status_callback_for(callback, row.pk),
    )
    try:
        result = provider.send(request)
    except ProviderError as exc:
        _write_error(row, exc, mine=mine, outcome=outcome, kinds=ErrorKind)
        return
    except Exception as exc:  # a bug or an unexpected library error: the request may have gone out
        logger.exception("provider send raised for outbound message %s", row.pk)
        moved = outbound_transition(
            message_ids=[row.pk], to=Status.UNKNOWN, extra=mine, error_code="exception", error_message=str(exc)[:500]
        )
        outcome.unknown.extend(moved)
        return
    moved = outbound_transition(
        message_ids=[row.pk],
        to=Status.SENT,
        extra=mine,
        provider_sid=result.sid,
        price=result.price,
        price_unit=result.price_unit or "",
        segments=result.segments or row.segments,
        error_code="",
        error_message="",
    )
    if not moved:
        # A status callback can arrive before this write: it attached the SID (through the message id in its URL)
        # and moved the message on already. Keep what only the API answer tells, and count the message as sent.
        moved = list(OutboundMessage.objects.filter(pk=row.pk, provider_sid=result.sid).values_list("pk", flat=True))
        OutboundMessage.objects.filter(pk__in=moved).update(
            price=result.price,
            price_unit=result.price_unit or "",
            segments=result.segments or row.segments,
            sent_at=Coalesce(F("sent_at"), Now()),
        )
    outcome.sent.extend(moved)


def status_callback_for(callback: str | None, message_id: int) -> str | None:
    """The status callback URL for one message: it names the message, so a callback that arrives before the worker
    has recorded the provider's SID still finds it (Twilio signs the whole URL, query included)."""
    if not callback:
        return None
    return f"{callback}{'&' if '?' in callback else '?'}m={message_id}"


def _write_error(row: OutboundMessage, exc: Any, *, mine: Q, outcome: BatchOutcome, kinds: Any) -> None:
    details = {"error_code": str(exc.code)[:32], "error_message": str(exc.message)[:1000]}
    if exc.kind == kinds.TRANSIENT and exc.may_have_sent:
        # A timeout after the request left: resending could text the contact twice.
        outcome.unknown.extend(outbound_transition(message_ids=[row.pk], to=Status.UNKNOWN, extra=mine, **details))
        return
    if exc.kind == kinds.TRANSIENT:
        attempts = row.attempts + 1
        if attempts < int(_setting("SMS_MAX_ATTEMPTS", 5)):
            until = timezone.now() + dt.timedelta(seconds=_retry_delay(attempts))
            moved = outbound_transition(
                message_ids=[row.pk], to=Status.QUEUED, extra=mine, next_attempt_at=until, claim=None, **details
            )
            if moved:
                enqueue_after_commit(moved, priority=row.priority, countdown=(until - timezone.now()).total_seconds())
            outcome.retried.extend(moved)
            return
        details["error_message"] = f"Gave up after {attempts} attempts: {details['error_message']}"[:1000]
    outcome.failed.extend(outbound_transition(message_ids=[row.pk], to=Status.FAILED, extra=mine, **details))
    if exc.kind == kinds.OPT_OUT and row.contact is not None:
        dnc_add(
            contact=row.contact,
            reason=DoNotContact.Reason.UNSUBSCRIBED,
            source=DoNotContact.Source.PROVIDER,
            comment=f"Twilio error {exc.code}: {exc.message}"[:500],
        )


def _record_timeline(outcome: BatchOutcome) -> None:
    """One ``sms.sent`` / ``sms.failed`` entry per contact, written in bulk."""
    ids = outcome.sent + outcome.failed
    if not ids:
        return
    # What this send did, not the row's status now: a status callback can overtake the worker's write and move a sent
    # message on to failed already (it records that on the timeline itself), which is no "not sent".
    not_sent = set(outcome.failed)
    entries: list[TimelineEvent] = []
    rows = OutboundMessage.objects.filter(pk__in=ids, contact__isnull=False).select_related("text_message")
    for row in rows.only("id", "contact_id", "status", "body", "error_code", "error_message", "text_message__name"):
        name = row.text_message.name if row.text_message else "Text message"
        if row.pk in not_sent:
            kind, title = "sms.failed", f"Text message not sent: {name}"
        else:
            kind, title = "sms.sent", f"Text message sent: {name}"
        if row.contact_id is None:
            continue
        entries.append(
            TimelineEvent(
                contact_id=row.contact_id,
                kind=kind,
                title=title,
                detail={
                    "outbound_id": row.pk,
                    "body": row.body,
                    "error_code": row.error_code,
                    "error_message": row.error_message,
                },
            )
        )
    timeline_record_many(entries=entries)


# Crash recovery


@dataclass
class SweepResult:
    requeued: list[int]
    unknown: list[int]
    reenqueued: list[int]


def outbound_sweep(*, stale_after: float | None = None) -> SweepResult:
    """Recover from workers that died: see the module docstring. Safe to run concurrently with workers."""
    stale = float(stale_after if stale_after is not None else _setting("SMS_SENDING_STALE_SECONDS", 300))
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
            f"UPDATE {table} SET next_attempt_at = %s WHERE status = %s AND next_attempt_at < %s "  # noqa: S608
            "RETURNING id, priority",
            [
                connection.ops.adapt_datetimefield_value(now),
                Status.QUEUED,
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
