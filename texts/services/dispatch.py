"""The sending engine: a batch of queued ids in, each message sent at its slot or handed back with its due time.

One task (``outbound_send_batch``) runs ``outbound_process_batch`` over its ids:

1. **Claim** a chunk (``queued -> sending`` with a fresh claim token, one statement; ``SKIP LOCKED`` lets two workers
   holding the same ids split them). Parked rows belong to the pacer and are never claimed here.
2. **Check and prepare** set-based: Do Not Contact again, quiet hours, render, count segments, choose the sender.
3. **Plan** on the sender's shared rate limit (``providers.ratelimit``, one peek per sender and chunk). A bulk
   message whose slot is further than ``SMS_SCHEDULE_HORIZON_SECONDS`` is *parked* (back to ``queued``, in its
   sender's line, no task): the pacer (``texts.services.pacing``) hands it a slot when the sender has one. A priority
   message reserves its slot however far and is *held*: back to ``queued`` until that moment, with a task due then.
   Nothing waits in a worker.
4. **Send** with many calls in flight (``SMS_SEND_CONCURRENCY`` per process) on the process's event loop
   (``providers.aio``) with the provider's asynchronous client. Rows are handed to the loop a few more than the calls
   allowed at once, and wait for a free call there. A call that may start first has the process's stamper thread
   commit its ``provider_called_at`` (one statement for every call that asked meanwhile, guarded by the claim
   token), then reserves its slot (so the sender's rate holds at the provider however long the message waited, and
   only the wait for the slot stands between the reservation and the request), then the request leaves at the
   slot. A call whose slot was taken meanwhile does not start: its stamp is taken back and it is planned again. So a
   worker killed with calls in flight leaves ``unknown`` only the calls that may have left (or were at most
   ``LATE_TOLERANCE_SECONDS`` from leaving); the sweeper and reconciliation take it from there, and such a message is
   never sent again automatically.
5. **Write outcomes** in batches as calls complete: one statement per kind of outcome for everything that finished
   together (sent with SID, price and segments; failed with the provider's code; retry with backoff; unknown).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import heapq
import itertools
import logging
import math
import os
import queue
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from contacts.models import DoNotContact, TimelineEvent
from contacts.selectors import (
    CHANNEL_LABEL,
    OUTSIDE_WINDOW,
    consent_required,
    consented_addresses,
    in_window_contacts,
    needs_window,
    unreachable_at_claim,
)
from contacts.services import dnc_add, timeline_record_many
from providers import registry
from providers.base import MessageTemplate, callback_url_for, senders_for
from providers.ratelimit import Ask, Lane, Limiter, late_wake_allowance
from providers.segments import MAX_BODY_CHARACTERS, count_segments
from providers.senders import NoSender, SenderRules, choose_sender, sender_rules

from .. import quiet_hours
from ..bounces import bad_address_failures_record
from ..content import TemplateProblem, content_render, content_template, content_too_long
from ..footer import footer_add
from ..models import TIMESTAMP_FIELD, OutboundMessage, Schedule, Source, Status
from ..personalise import personalise_render, personalise_render_url
from ..selectors import last_numbers
from ..signals import message_status_changed
from .caps import CAP_CODE, Caps, caps, caps_defer, caps_over
from .links import links_track
from .outbound import enqueue_after_commit, outbound_transition

logger = logging.getLogger(__name__)

# Outcomes that finished together are written together; a lone one waits at most this long for company.
WRITE_DELAY_SECONDS = 0.05
# A call waits at most this long for the slot it reserves; further away, the message is planned again.
LATE_TOLERANCE_SECONDS = 0.1
# A batch's retries wait in its ``_RetryWakes`` to share a task with the rest of its retries due in the same second,
# until that second is this close (or the batch ends). More than a write's interval, less than a retry's delay.
RETRY_WAKE_SOON_SECONDS = 1.0


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


@dataclass
class BatchOutcome:
    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    deferred: list[int] = field(default_factory=list)  # quiet hours: back to the queue until the window opens
    retried: list[int] = field(default_factory=list)  # a transient error: back to the queue with backoff
    unknown: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # no longer this worker's (swept and claimed again)
    parked: list[int] = field(default_factory=list)  # bulk: waiting in the sender's line for the pacer
    held: list[int] = field(default_factory=list)  # priority: its slot is reserved, a task comes back then


def outbound_claim(
    *, message_ids: list[int], outcome: BatchOutcome | None = None
) -> tuple[uuid.UUID, list[OutboundMessage]]:
    """Claim the due, queued, unparked rows among ``message_ids`` for this worker (``queued -> sending``). With a
    frequency cap on (``texts.services.caps``), marketing rows over it are deferred or skipped in the same
    transaction, race-free, and counted in ``outcome``."""
    token = uuid.uuid4()
    now = timezone.now()
    # Due now or within the horizon: a task timed to a slot may run a moment early (its countdown is rounded, the
    # broker's clock is not ours); such a row waits in the batch until its time, as any planned row does.
    soon = now + dt.timedelta(seconds=float(_setting("SMS_SCHEDULE_HORIZON_SECONDS", 0.5)))
    limits = caps()
    with transaction.atomic():
        claimable = _lock_claimable(message_ids, soon=soon)
        if not limits.on:
            _claim_rows(claimable, token=token, now=now)
        else:
            _claim_capped(locked=claimable, limits=limits, token=token, now=now, outcome=outcome or BatchOutcome())
    # By primary key too, the status checked here for the same reason (``claim`` has no index of its own).
    rows = (
        OutboundMessage.objects.filter(pk__in=claimable, claim=token)
        .select_related("contact", "text_message")
        .order_by("pk")
    )
    return token, [row for row in rows if row.status == Status.SENDING]


def _lock_claimable(message_ids: list[int], *, soon: dt.datetime) -> list[int]:
    """Lock the chunk's rows that no other worker holds (``SKIP LOCKED``: two workers given the same ids split them
    rather than queue behind each other) and keep the due, queued, unparked ones.

    By primary key alone, and checked here rather than in the statement: right after a fan-out PostgreSQL's
    statistics do not know the new queued rows, and a ``status = 'queued'`` in the WHERE then made it scan the
    ``outbound_due`` index through every queued row for each chunk, or for each queued row (a claim of 32 rows ran
    for a minute on 10,000; tests/texts/test_claim_plan.py)."""
    locked = (
        OutboundMessage.objects.filter(pk__in=message_ids)
        .order_by("pk")
        .select_for_update(skip_locked=True)
        .values_list("pk", "status", "schedule", "next_attempt_at")
    )
    return [
        pk
        for pk, status, schedule, at in locked
        if status == Status.QUEUED and schedule != Schedule.PARKED and (at is None or at <= soon)
    ]


def _claim_rows(ids: list[int], *, token: uuid.UUID, now: dt.datetime) -> None:
    """``queued -> sending`` under this claim's token, for rows this transaction holds locked and found claimable (so
    by primary key alone, like the lock). SQLite takes no row locks: there the status is checked again."""
    if ids:
        still = {} if connection.features.has_select_for_update_skip_locked else {"status": Status.QUEUED}
        OutboundMessage.objects.filter(pk__in=ids, **still).update(
            status=Status.SENDING, sending_at=now, updated_at=now, claim=token, provider_called_at=None
        )


def _claim_capped(
    *, locked: list[int], limits: Caps, token: uuid.UUID, now: dt.datetime, outcome: BatchOutcome
) -> None:
    """The claim with the caps: of the rows locked, find those over a cap (``caps_over``: the contacts' locks and one
    counting statement), claim the others, and defer or fail those over it, all in the caller's transaction."""
    over = caps_over(message_ids=locked, limits=limits, now=now)
    _claim_rows([pk for pk in locked if pk not in over.ids], token=token, now=now)
    if over.deferred:
        countdowns = caps_defer(over=over, now=now)
        outcome.deferred.extend(sorted(over.deferred))
        _wake(countdowns, countdowns, priority=dict.fromkeys(countdowns, False))
    for reason, ids in _by_reason(over.skipped).items():
        outcome.failed.extend(
            outbound_transition(
                message_ids=ids, to=Status.FAILED, error_code=CAP_CODE, error_message=reason, claim=None
            )
        )


def _by_reason(rows: dict[int, str]) -> dict[str, list[int]]:
    grouped: dict[str, list[int]] = defaultdict(list)
    for pk, reason in sorted(rows.items()):
        grouped[reason].append(pk)
    return grouped


def outbound_process_batch(
    *,
    message_ids: list[int],
    get_provider: Callable[[], Any] | None = None,
    get_config: Callable[[], Any] | None = None,
    limiter: Limiter | None = None,
) -> BatchOutcome:
    """Claim, check, schedule, send and record a batch of outbound messages (see the module docstring).

    The three collaborators default to the provider that sends (``registry.get_provider``, ``registry.get_config``)
    and ``ratelimit.get_limiter()``; unit tests pass their own.
    """
    if get_provider is None or get_config is None or limiter is None:
        from providers.ratelimit import get_limiter

        get_provider = get_provider or registry.get_provider
        get_config = get_config or registry.get_config
        limiter = limiter or get_limiter()
    outcome = BatchOutcome()
    _Engine(get_provider=get_provider, get_config=get_config, limiter=limiter, outcome=outcome).run(message_ids)
    _record_timeline(outcome)
    return outcome


@dataclass(order=True)
class _Due:
    at: float
    seq: int
    row: OutboundMessage = field(compare=False)


class _Engine:
    """One batch: claims chunks as the window empties, sends rows at their slots, writes outcomes as they finish."""

    def __init__(
        self,
        *,
        get_provider: Callable[[], Any],
        get_config: Callable[[], Any],
        limiter: Limiter,
        outcome: BatchOutcome,
    ) -> None:
        self.get_provider = get_provider
        self.get_config = get_config
        self.limiter = limiter
        self.outcome = outcome
        self.concurrency = max(1, int(_setting("SMS_SEND_CONCURRENCY", 16)))
        self.chunk = max(1, int(_setting("SMS_CLAIM_CHUNK", 32)))
        self.horizon = float(_setting("SMS_SCHEDULE_HORIZON_SECONDS", 0.5))
        # Rows are stamped and handed to the loop in groups (one UPDATE each), a few more than the calls allowed in
        # flight, which wait at the loop's gate: the window stays full while this thread writes and claims. A group
        # is at least a quarter of the window, unless that is all there is left.
        self.window = self.concurrency + max(1, self.concurrency // 2)
        self.group = max(1, self.concurrency // 4)
        self.gate: Any = None
        self.more_to_claim = False
        self.ready: list[_Due] = []
        self.inflight: dict[concurrent.futures.Future[Any], OutboundMessage] = {}
        self.finished: list[tuple[OutboundMessage, Any]] = []
        self.first_finished_at = 0.0
        self.seq = itertools.count()
        self.provider: Any = None
        self.callback: str | None = None
        self.wakes = _RetryWakes()

    def run(self, message_ids: list[int]) -> None:
        pending = list(message_ids)
        try:
            while True:
                while pending and len(self.ready) + len(self.inflight) < 2 * self.window:
                    chunk, pending = pending[: self.chunk], pending[self.chunk :]
                    self._claim_and_schedule(chunk)
                self.more_to_claim = bool(pending)
                self._submit_due()
                if not (self.ready or self.inflight):
                    if pending:
                        continue
                    break
                self._wait()
                self._write(force=False)
            self._write(force=True)
            self.wakes.flush(everything=True)
        except BaseException:
            self._abandon()
            raise

    def _abandon(self) -> None:
        """A failure of this worker's own (the database or the rate limiter went away): let the calls in flight end,
        so the next task starts with a free window, and record what they did if the database still answers. Rows
        whose outcome cannot be written stay ``sending`` with ``provider_called_at`` set: the sweeper makes them
        ``unknown`` and reconciliation asks the provider what became of them."""
        if self.inflight:
            # A provider's calls end within its own timeout (its configuration's, when it has one).
            timeout = float(getattr(getattr(self.provider, "config", None), "timeout", 10.0))
            concurrent.futures.wait(list(self.inflight), timeout=timeout + 5)
            self._wait_done(set(self.inflight))
        try:
            self._write(force=True)
        except Exception:
            logger.warning(
                "outcomes of %d finished calls not written; the sweeper will see to them", len(self.finished)
            )
        try:
            self.wakes.flush(everything=True)
        except Exception:
            logger.warning("retries not woken (the broker went away): the sweeper will queue them when due")

    # 1-3: claim, check, prepare, schedule

    def _claim_and_schedule(self, ids: list[int]) -> None:
        _, rows = outbound_claim(message_ids=ids, outcome=self.outcome)
        rows = _drop_dnc(rows, self.outcome)
        if not rows:
            return
        config = self.get_config()
        if self.provider is None:
            self.provider = self.get_provider()
            self.callback = getattr(config, "status_callback_url", None)
        # Prepared before quiet hours: a message deferred to the morning waits in its sender's line, which the pacer
        # then moves at the sender's rate when the window opens.
        rows = _prepare(rows, senders=config.senders, outcome=self.outcome, rules=_rules(self.provider), config=config)
        rows = _apply_quiet_hours(rows, self.outcome)
        for at, row in self._schedule(rows):
            heapq.heappush(self.ready, _Due(at, next(self.seq), row))

    def _schedule(self, rows: list[OutboundMessage]) -> list[tuple[float, OutboundMessage]]:
        """Plan each row's slot on its sender (a peek: nothing is reserved yet); rows that cannot go within the horizon
        are parked (bulk) or hold a slot reserved now (priority). The rows kept reserve at the moment of their call."""
        go: list[tuple[float, OutboundMessage]] = []
        park: list[OutboundMessage] = []
        hold: list[tuple[OutboundMessage, float]] = []
        far_priority: dict[str, list[OutboundMessage]] = defaultdict(list)
        by_sender: dict[str, list[OutboundMessage]] = defaultdict(list)
        for row in rows:
            if row.schedule == Schedule.HELD:
                row._reserved = True  # type: ignore[attr-defined]  # its slot was reserved when it was held
                go.append((_due_at(row), row))
            else:
                row._reserved = False  # type: ignore[attr-defined]
                by_sender[row._sender_config.key].append(row)  # type: ignore[attr-defined]
        for key, group in by_sender.items():
            sender_config = group[0]._sender_config  # type: ignore[attr-defined]
            slots = self.limiter.reserve(
                sender_key=key,
                rate_per_second=sender_config.rate_per_second,
                asks=[_ask(row) for row in group],
                horizon=self.horizon,
                peek=True,
            )
            now = time.time()
            for row, slot in zip(group, slots, strict=True):
                if slot.at - now <= self.horizon:
                    go.append((max(slot.at, _due_at(row)), row))
                elif row.priority:
                    far_priority[key].append(row)
                else:
                    park.append(row)
        for key, group in far_priority.items():
            sender_config = group[0]._sender_config  # type: ignore[attr-defined]
            slots = self.limiter.reserve(
                sender_key=key,
                rate_per_second=sender_config.rate_per_second,
                asks=[_ask(row) for row in group],
                horizon=self.horizon,
            )
            hold += [(row, slot.at) for row, slot in zip(group, slots, strict=True)]
        self._hand_back(park=park, hold=hold)
        return go

    def _hand_back(self, *, park: list[OutboundMessage], hold: list[tuple[OutboundMessage, float]]) -> None:
        if park:
            self.outcome.parked.extend(_hand_back(park, schedule=Schedule.PARKED))
        if hold:
            self.outcome.held.extend(
                _hand_back([r for r, _ in hold], schedule=Schedule.HELD, until={r.pk: at for r, at in hold})
            )

    # 4: send

    def _room(self) -> int:
        """How many more rows may be handed to the loop now (0 until a whole group fits, but for the last rows)."""
        room = self.window - len(self.inflight)
        last_ones = not self.more_to_claim and len(self.ready) <= room
        return room if room >= self.group or not self.inflight or last_ones else 0

    def _submit_due(self) -> None:
        from providers import aio

        room = self._room()
        now = time.time()
        due: list[OutboundMessage] = []
        while self.ready and room > len(due) and self.ready[0].at <= now + 0.002:
            due.append(heapq.heappop(self.ready).row)
        if not due:
            return
        if self.gate is None:
            self.gate = aio.run(_gate(self.concurrency))
        # A call's "provider called" stamp is committed the moment the call may start, by the process's stamper
        # thread (the loop must not touch the ORM), so rows waiting for a free call are not stamped: a worker killed
        # now leaves unknown only the calls that may really have left. Inside a caller's transaction (tests) the
        # stamper's own connection cannot see the rows, so the stamps are written here, on this connection.
        # The stamp records the provider too (its registered name): a status callback or reconciliation asks that one.
        in_transaction = connection.in_atomic_block
        provider = str(getattr(self.provider, "name", ""))
        rows = _mark_provider_called(due, provider=provider) if in_transaction else due
        for row in rows:
            row.provider = provider or row.provider
            call = _call(
                gate=self.gate,
                provider=self.provider,
                request=self._request(row),
                limiter=None if row._reserved else self.limiter,  # type: ignore[attr-defined]
                sender_config=row._sender_config,  # type: ignore[attr-defined]
                ask=_ask(row),
                tolerance=min(self.horizon, LATE_TOLERANCE_SECONDS),
                stamp=None if in_transaction else _stamper().submit(row.pk, row.claim, provider),
            )
            self.inflight[aio.submit(call)] = row
        if in_transaction:
            self.outcome.skipped.extend(r.pk for r in due if r.provider_called_at is None)

    def _request(self, row: OutboundMessage) -> Any:
        from providers.base import SendRequest

        content: tuple[str, dict[str, str]] | None = getattr(row, "_content", None)
        if content is not None:  # the template carries its own text and media
            return SendRequest(
                to=row.to_number,
                body="",
                sender=row._sender_config.sender,  # type: ignore[attr-defined]
                status_callback=status_callback_for(self.callback, row.pk),
                content_sid=content[0],
                content_variables=content[1],
                channel=row.channel,
            )
        media = row.text_message.media_urls if row.text_message else []
        contact = row.contact or _NoContact()
        return SendRequest(
            to=row.to_number,
            body=row.body,
            sender=row._sender_config.sender,  # type: ignore[attr-defined]
            media_urls=tuple(personalise_render_url(url, contact=contact) for url in media),
            status_callback=status_callback_for(self.callback, row.pk),
            channel=row.channel,
        )

    def _wait(self) -> None:
        now = time.time()
        timeouts = []
        if self.ready and self._room():
            timeouts.append(max(0.0, self.ready[0].at - now))
        if self.finished:
            timeouts.append(max(0.0, self.first_finished_at + WRITE_DELAY_SECONDS - now))
        timeout = min(timeouts) if timeouts else None
        if self.inflight:
            done, _ = concurrent.futures.wait(
                list(self.inflight), timeout=timeout, return_when=concurrent.futures.FIRST_COMPLETED
            )
        else:
            # Nothing in flight: the next reserved slot is at most the horizon away.
            time.sleep(min(self.horizon, timeout or 0.0))
            done = set()
        self._wait_done(done)

    def _wait_done(self, done: set[concurrent.futures.Future[Any]]) -> None:
        not_yet: list[tuple[OutboundMessage, _NotYet]] = []
        unsent: list[tuple[OutboundMessage, Any]] = []
        for future in done:
            if not future.done():
                continue
            row = self.inflight.pop(future)
            error = future.exception()
            result = error if error is not None else future.result()
            if isinstance(result, _NotYet | _Unsent) and result.stamped:
                row.provider_called_at = timezone.now()  # what the stamper committed, taken back below
                row.attempts += 1
            if isinstance(result, _NotYet):
                not_yet.append((row, result))
                continue
            if isinstance(result, _Unsent):
                unsent.append((row, result.error))
                continue
            if result is _SKIPPED:  # swept and claimed again by another worker meanwhile: not ours to send
                self.outcome.skipped.append(row.pk)
                continue
            if isinstance(result, _Done):
                if result.stamped:
                    row.provider_called_at = timezone.now()
                    row.attempts += 1
                result = result.value
            if not self.finished:
                self.first_finished_at = time.time()
            self.finished.append((row, result))
        if not_yet:
            self._not_yet(not_yet)
        if unsent:
            self._unsent(unsent)

    def _not_yet(self, rows: list[tuple[OutboundMessage, _NotYet]]) -> None:
        """Calls that did not start: the sender had no slot at that moment (another worker or a priority send took
        it). Nothing reached the provider, so the stamp is taken back; each row is planned again."""
        stamped = [row for row, _ in rows if row.provider_called_at is not None]
        back = {r.pk for r in _unmark_provider_called(stamped)} | {row.pk for row, _ in rows if row not in stamped}
        now = time.time()
        park: list[OutboundMessage] = []
        hold: list[tuple[OutboundMessage, float]] = []
        for row, answer in rows:
            if row.pk not in back:
                continue
            if answer.reserved and answer.at - now > self.horizon:
                hold.append((row, answer.at))
            elif answer.reserved:
                row._reserved = True  # type: ignore[attr-defined]
                heapq.heappush(self.ready, _Due(answer.at, next(self.seq), row))
            elif answer.at - now <= self.horizon:
                heapq.heappush(self.ready, _Due(answer.at, next(self.seq), row))
            else:
                park.append(row)
        self._hand_back(park=park, hold=hold)

    def _unsent(self, rows: list[tuple[OutboundMessage, Any]]) -> None:
        """Calls stamped that sent nothing (the limiter was unreachable): the stamp is taken back, so the attempt does
        not count and the row is never ``unknown``, and the error is written as the outcome (a retry)."""
        stamped = [row for row, _ in rows if row.provider_called_at is not None]
        back = {r.pk for r in _unmark_provider_called(stamped)} | {row.pk for row, _ in rows if row not in stamped}
        for row, error in rows:
            if row.pk not in back:  # swept and claimed again meanwhile: not ours any more
                self.outcome.skipped.append(row.pk)
                continue
            if not self.finished:
                self.first_finished_at = time.time()
            self.finished.append((row, error))

    # 5: outcomes

    def _write(self, *, force: bool) -> None:
        if not self.finished:
            return
        crowd = len(self.finished) >= max(1, self.concurrency // 2)
        if not (force or crowd or time.time() - self.first_finished_at >= WRITE_DELAY_SECONDS):
            return
        finished, self.finished = self.finished, []
        _write_outcomes(finished, self.outcome, wakes=self.wakes)
        self.wakes.flush(everything=False)


async def _gate(size: int) -> asyncio.Semaphore:
    return asyncio.Semaphore(size)  # made on the loop that uses it


@dataclass(frozen=True)
class _NotYet:
    at: float  # the sender's next slot for this message
    reserved: bool  # a priority message: that slot is its own
    stamped: bool = False  # the stamper committed "provider called" for this attempt: the batch takes it back


@dataclass(frozen=True)
class _Unsent:
    stamped: bool  # as for _NotYet
    error: Any  # why nothing was sent (a transient ProviderError: the message is retried)


@dataclass(frozen=True)
class _Done:
    stamped: bool  # the stamper committed "provider called" for this attempt (attempts + 1)
    value: Any  # the provider's SendResult, or the exception


_SKIPPED = object()
# A call woken too late for its slot reserves another at most this many times, then goes back to its batch.
LATE_WAKE_RESERVES = 3


async def _call(
    *,
    gate: asyncio.Semaphore,
    provider: Any,
    request: Any,
    limiter: Limiter | None,
    sender_config: Any,
    ask: Ask,
    tolerance: float,
    stamp: Callable[[], Any] | None = None,
) -> Any:
    """One provider call, on the loop, in three steps once it has a free call (``gate``):

    1. the stamp (``stamp``, when the batch's thread did not write it already): "provider called" committed;
    2. the slot, reserved now, at the moment the call may start, so a message that waited (for a free call, for this
       thread, for its stamp) never goes early or in a burst. A slot further than ``tolerance`` away is not waited
       for: ``_NotYet``, and the batch takes the stamp back;
    3. the request, at that slot.

    In this order only the wait for the slot stands between the reservation and the request: the requests leave at
    their slots' spacing, and the sender's rate holds at the provider, not only on paper. (Stamped after the
    reservation, the stamp round's varying delay bunched them: 106 in a second on a 100/s short code.)"""
    from providers.base import ErrorKind, ProviderError

    async with gate:
        stamped = False
        if stamp is not None:
            try:
                if not await stamp():
                    return _SKIPPED
            except Exception as exc:  # the database went away: nothing was sent
                logger.warning("provider-called stamp not written: %s", type(exc).__name__)
                error = ProviderError(
                    ErrorKind.TRANSIENT, "database", "The database could not be reached; nothing was sent."
                )
                return _Done(False, error)
            stamped = True
        if limiter is not None:
            for attempt in range(LATE_WAKE_RESERVES + 1):
                try:
                    (slot,) = limiter.reserve(
                        sender_key=sender_config.key,
                        rate_per_second=sender_config.rate_per_second,
                        asks=[ask],
                        horizon=tolerance,
                    )
                except (
                    Exception
                ) as exc:  # Redis gone: no slot, and nothing was sent (a retry with backoff, not unknown)
                    logger.warning("rate limiter unavailable: %s", type(exc).__name__)
                    error = ProviderError(
                        ErrorKind.TRANSIENT, "rate_limiter", "The rate limiter could not be reached; nothing was sent."
                    )
                    return _Unsent(stamped, error)
                wait = slot.at - time.time()
                if not slot.reserved or wait > tolerance:
                    return _NotYet(slot.at, slot.reserved, stamped)
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
                # Woken later than the limiter's allowance for lateness (a busy loop, the GIL, a descheduled process):
                # sent now, this request would crowd the ones of the slots after it into one second at the provider.
                # The missed slot is left unused and the call takes the next free one.
                if time.time() - slot.at <= late_wake_allowance():
                    break
                if attempt == LATE_WAKE_RESERVES:
                    return _NotYet(time.time(), False, stamped)  # the batch plans it again
        try:
            return _Done(stamped, await provider.send_async(request))
        except Exception as exc:
            return _Done(stamped, exc)


class _Stamper:
    """The process's writer of "provider called" stamps: a thread with its own database connection, which stamps every
    call that asked since its last statement in one UPDATE (one per claim token) and answers each whether the row was
    still this worker's. Calls ask it from the event loop the moment they may start.

    Every call of the process waits on this thread, so nothing may stop it: a caller that gave up (its future
    cancelled) is not answered, anything unforeseen is answered to the round's callers as their error (their rows are
    not sent), and a thread that died all the same is replaced on the next ask (``_stamper``)."""

    def __init__(self) -> None:
        self.requests: queue.SimpleQueue[tuple[int, Any, str, concurrent.futures.Future[bool]]] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="smsapp-stamper", daemon=True)
        self.thread.start()

    def submit(self, pk: int, token: Any, provider: str = "") -> Callable[[], Any]:
        """A coroutine function for ``_call``: awaiting it stamps this row (True) or finds it taken (False)."""

        async def stamp() -> bool:
            future: concurrent.futures.Future[bool] = concurrent.futures.Future()
            self.requests.put((pk, token, provider, future))
            return await asyncio.wrap_future(future)

        return stamp

    def _run(self) -> None:
        while True:
            batch = [self.requests.get()]
            while len(batch) < 500:
                try:
                    batch.append(self.requests.get_nowait())
                except queue.Empty:
                    break
            try:
                self._stamp_round(batch)
            except Exception as exc:
                logger.exception("provider-called stamps: a round failed; its %d calls are not sent", len(batch))
                for request in batch:
                    if isinstance(request, tuple) and len(request) == 4:
                        _answer(request[3], error=exc)

    @staticmethod
    def _stamp_round(batch: list[tuple[int, Any, str, concurrent.futures.Future[bool]]]) -> None:
        from django.db import close_old_connections

        by_token: dict[tuple[Any, str], list[tuple[int, concurrent.futures.Future[bool]]]] = defaultdict(list)
        for pk, token, provider, future in batch:
            by_token[(token, provider)].append((pk, future))
        for (token, provider), group in by_token.items():
            try:
                stamped = _stamp_ids([pk for pk, _ in group], token, provider)
            except Exception as exc:
                close_old_connections()
                connection.close()  # this thread's connection: the next statement opens a new one
                for _, future in group:
                    _answer(future, error=exc)
                continue
            for pk, future in group:
                _answer(future, result=pk in stamped)


def _answer(
    future: concurrent.futures.Future[bool], *, result: bool = False, error: BaseException | None = None
) -> None:
    """Answer a stamp's caller, unless it gave up (a cancelled future cannot take an answer)."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except concurrent.futures.InvalidStateError:
        pass


_stamper_of: tuple[int, _Stamper] | None = None
_stamper_lock = threading.Lock()


def _stamper() -> _Stamper:
    global _stamper_of
    with _stamper_lock:
        if _stamper_of is None or _stamper_of[0] != os.getpid() or not _stamper_of[1].thread.is_alive():
            if _stamper_of is not None and _stamper_of[0] == os.getpid():
                logger.error("provider-called stamps: the stamper thread had died; starting another")
            _stamper_of = (os.getpid(), _Stamper())
        return _stamper_of[1]


def _ask(row: OutboundMessage) -> Ask:
    return Ask(cost=max(1, row.segments or 1), lane=_lane(row))


def _due_at(row: OutboundMessage) -> float:
    return row.next_attempt_at.timestamp() if row.next_attempt_at else 0.0


def _lane(row: OutboundMessage) -> Lane:
    if row.priority:
        return Lane.PRIORITY
    return Lane.PACED if row.schedule == Schedule.PACED else Lane.BULK


def _drop_dnc(rows: list[OutboundMessage], outcome: BatchOutcome) -> list[OutboundMessage]:
    """Rows whose contact is Do Not Contact on the row's channel, or whose address opted out of it, fail; then those
    without consent and (WhatsApp) outside the 24-hour window. A few queries per channel in the chunk."""
    by_channel: dict[str, list[OutboundMessage]] = defaultdict(list)
    for row in rows:
        by_channel[row.channel or "sms"].append(row)
    kept: list[OutboundMessage] = []
    for channel, group in by_channel.items():
        kept += _drop_dnc_on(channel, group, outcome)
    kept.sort(key=lambda r: r.pk)
    return _drop_outside_window(_drop_unconsented(kept, outcome), outcome)


def _drop_dnc_on(channel: str, rows: list[OutboundMessage], outcome: BatchOutcome) -> list[OutboundMessage]:
    label = CHANNEL_LABEL.get(channel, channel)
    contact_ids = {r.contact_id for r in rows if r.contact_id}
    dnc, suppressed = unreachable_at_claim(
        contact_ids=contact_ids, addresses={r.to_number for r in rows}, channel=channel
    )
    blocked = [r for r in rows if r.contact_id in dnc]
    if blocked:
        _fail_rows(
            blocked, code="do_not_contact", message=f"The contact is Do Not Contact for {label}.", outcome=outcome
        )
    opted_out = [r for r in rows if r.contact_id not in dnc and r.to_number in suppressed]
    if opted_out:
        address = "Messenger ID" if channel == "messenger" else "number"
        _fail_rows(opted_out, code="do_not_contact", message=f"The {address} opted out of {label}.", outcome=outcome)
    return [r for r in rows if r.contact_id not in dnc and r.to_number not in suppressed]


def _uses_template(row: OutboundMessage) -> bool:
    return bool(row.text_message and row.text_message.content_sid)


def _drop_outside_window(rows: list[OutboundMessage], outcome: BatchOutcome) -> list[OutboundMessage]:
    """Free-form WhatsApp rows to contacts who have not written on WhatsApp in 24 hours fail before the provider is
    called (the provider would refuse them); one query per chunk."""
    free_form = [r for r in rows if needs_window(channel=r.channel, template=_uses_template(r))]
    if not free_form:
        return rows
    inside = in_window_contacts(contact_ids={r.contact_id for r in free_form if r.contact_id})
    refused = {r.pk for r in free_form if r.contact_id not in inside}
    if refused:
        _fail_rows(
            [r for r in rows if r.pk in refused],
            code="outside_window",
            message=f"Not sent: the contact {OUTSIDE_WINDOW}.",
            outcome=outcome,
        )
    return [r for r in rows if r.pk not in refused]


def _is_marketing(row: OutboundMessage) -> bool:
    return row.source != Source.TEST and bool(row.text_message and row.text_message.is_marketing)


def _drop_unconsented(rows: list[OutboundMessage], outcome: BatchOutcome) -> list[OutboundMessage]:
    """Marketing rows whose number has no consent (withdrawn since they were queued) fail with the reason; one
    query per chunk."""
    marketing = [r for r in rows if _is_marketing(r) and consent_required(marketing=True)]
    if not marketing:
        return rows
    refused: set[int] = set()
    for channel in {r.channel for r in marketing}:
        group = [r for r in marketing if r.channel == channel]
        consented = consented_addresses(addresses={r.to_number for r in group}, channel=channel)
        refused |= {r.pk for r in group if r.to_number not in consented}
    if refused:
        _fail_rows(
            [r for r in rows if r.pk in refused],
            code="no_consent",
            message="The contact has not consented to marketing texts.",
            outcome=outcome,
        )
    return [r for r in rows if r.pk not in refused]


def _apply_quiet_hours(rows: list[OutboundMessage], outcome: BatchOutcome) -> list[OutboundMessage]:
    now = timezone.now()
    start, end = quiet_hours.window()
    ready: list[OutboundMessage] = []
    later: dict[int, dt.datetime] = {}
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
            later[row.pk] = allowed
    if later:
        deferred = [r for r in rows if r.pk in later]
        outcome.deferred.extend(_hand_back(deferred, until={pk: at.timestamp() for pk, at in later.items()}))
    return ready


def _fail_rows(rows: list[OutboundMessage], *, code: str, message: str, outcome: BatchOutcome) -> None:
    moved = outbound_transition(
        message_ids=[r.pk for r in rows], to=Status.FAILED, error_code=code, error_message=message, claim=None
    )
    outcome.failed.extend(moved)


def _render(row: OutboundMessage) -> str:
    # Rendered once: a row that was parked or held keeps the body it got at its first claim (``encoding`` is set
    # then), so a contact's field holding token syntax is never expanded by a second rendering. A body given at
    # enqueue (a test of unsaved editor text, an API send) wins over the text message's.
    if row.encoding:
        return row.body
    template = row.body or (row.text_message.body if row.text_message else "")
    if row.contact is None:
        return personalise_render(template, contact=_NoContact())
    return personalise_render(template, contact=row.contact)


class _NoContact:
    """Stands in for a missing contact when a test goes to a number nobody owns: every token takes its fallback."""

    custom_fields: dict[str, str] = {}

    def __getattr__(self, name: str) -> str:
        return ""


def _rules(provider: Any) -> SenderRules:
    """Where the provider's senders reach; a stand-in transport without rules (a unit test's) uses the sending
    provider's."""
    return provider if hasattr(provider, "sender_reaches") else sender_rules()


def _channel_sender(senders: Sequence[Any], channel: str) -> Any:
    """The sender of a WhatsApp or Messenger message: the channel's own (the first), else a Messaging Service."""
    if not senders:
        label = CHANNEL_LABEL.get(channel, channel)
        what = "WhatsApp sender number" if channel == "whatsapp" else f"{label} Sender ID"
        raise NoSender(
            f"No {label} sender is configured: set the {what} (or a Messaging Service) on the provider's settings page."
        )
    return senders[0]


def _prepare(
    rows: list[OutboundMessage],
    *,
    senders: Any,
    outcome: BatchOutcome,
    rules: SenderRules | None = None,
    config: Any = None,
) -> list[OutboundMessage]:
    """Render, count and choose the sender of each row; one bulk UPDATE for the batch. SMS rows choose among
    ``senders``; the other channels' rows take their channel's sender (``providers.base.senders_for``)."""
    rules = rules or sender_rules()
    pool = [s.sender.value for s in senders if s.sender.kind == "number"]
    last = last_numbers(contact_ids=[r.contact_id for r in rows if r.contact_id], pool_values=pool)
    ready: list[OutboundMessage] = []
    too_long: list[OutboundMessage] = []
    no_sender: dict[str, list[OutboundMessage]] = defaultdict(list)
    refused = _render_templates(rows)
    for row in rows:
        if not hasattr(row, "_content"):
            row.body = _render(row)
    # Rendered for the first time (``encoding`` is set below): the opt-out footer where it is due (one query) and
    # links as this recipient's short links (one INSERT for the chunk), before the count, so segments are those of
    # the body as sent. A template's text is the provider's: nothing can be added to it.
    first_render = [r for r in rows if not r.encoding and not hasattr(r, "_content")]
    footer_add(first_render)
    links_track(rows=first_render)
    for row in rows:
        if row.pk in refused:
            continue
        if len(row.body) > MAX_BODY_CHARACTERS and not hasattr(row, "_content"):
            too_long.append(row)
            continue
        info = count_segments(row.body)
        # Segments are SMS's: a chat message costs one slot of its sender, however long.
        row.segments, row.encoding = (info.segments if row.channel == "sms" else 1), info.encoding
        if row.channel != "sms":
            try:
                chosen = _channel_sender(senders_for(config, row.channel) if config is not None else (), row.channel)
            except NoSender as exc:
                no_sender[str(exc)].append(row)
                continue
            row.sender, row.sender_kind = chosen.sender.value, chosen.sender.kind
            row._sender_config = chosen  # type: ignore[attr-defined]
            ready.append(row)
            continue
        country = (row.contact.country if row.contact else "") or _region(row.to_number)
        try:
            chosen = choose_sender(
                senders=senders,
                contact_id=row.contact_id,
                to_number=row.to_number,
                country=country,
                # A conversation reply comes from the number the contact wrote to (set at enqueue) when it is ours.
                last=(row.sender if row.source == Source.CONVERSATION else "")
                or last.get(row.contact_id or 0, "")
                or row.sender,
                rules=rules,
            )
        except NoSender as exc:
            no_sender[str(exc)].append(row)
            continue
        row.sender, row.sender_kind = chosen.sender.value, chosen.sender.kind
        row._sender_config = chosen  # type: ignore[attr-defined]
        ready.append(row)
    # One UPDATE … FROM (VALUES …) for the chunk: Django's bulk_update builds a CASE WHEN per row and column, which
    # cost the bulk workers a third of their CPU (py-spy --gil during bench/dispatch.py) to compile.
    _update_each(
        to=None,
        rows=[(r.pk, r.claim, [r.body, r.segments, r.encoding, r.sender, r.sender_kind]) for r in rows],
        columns=["body", "segments", "encoding", "sender", "sender_kind"],
        sets=[
            "body = v.body",
            "segments = CAST(v.segments AS INTEGER)",
            "encoding = v.encoding",
            "sender = v.sender",
            "sender_kind = v.sender_kind",
        ],
    )
    if too_long:
        _fail_rows(
            too_long,
            code="too_long",
            message=f"After personalisation the message is over {MAX_BODY_CHARACTERS:,} characters.",
            outcome=outcome,
        )
    for reason, group in no_sender.items():
        _fail_rows(group, code="no_sender", message=reason, outcome=outcome)
    by_reason: dict[tuple[str, str], list[OutboundMessage]] = defaultdict(list)
    for row in rows:
        if row.pk in refused:
            by_reason[refused[row.pk]].append(row)
    for (code, reason), group in by_reason.items():
        _fail_rows(group, code=code, message=reason, outcome=outcome)
    return ready


def _render_templates(rows: list[OutboundMessage]) -> dict[int, tuple[str, str]]:
    """The rows whose text message sends a template get ``_content`` (its id and the variables rendered for the
    contact, at every claim: a value never expands twice, as it is rendered from the mapping) and, at their first
    claim, the template's text as the body the log shows. Returns the rows that cannot be sent: code and reason."""
    found: dict[str, MessageTemplate | TemplateProblem] = {}
    refused: dict[int, tuple[str, str]] = {}
    for row in rows:
        sid = row.text_message.content_sid if row.text_message else ""
        if not sid or row.text_message is None:
            continue
        if sid not in found:
            try:
                found[sid] = content_template(sid)
            except TemplateProblem as exc:
                found[sid] = exc
        template = found[sid]
        if isinstance(template, TemplateProblem):
            refused[row.pk] = ("template_unavailable", str(template))
            continue
        values = content_render(row.text_message.content_variables or {}, contact=row.contact or _NoContact())
        empty = [name for name, value in values.items() if not value.strip()]
        if empty:
            reason = f"Template variable {', '.join(empty)} is empty for this contact: give it a fallback."
            refused[row.pk] = ("template_variable_empty", reason)
            continue
        if long := content_too_long(values):
            reason = f"Template variable {long} is over 1,024 characters after personalisation."
            refused[row.pk] = ("template_variable_too_long", reason)
            continue
        row._content = (sid, values)  # type: ignore[attr-defined]
        if not row.encoding:
            row.body = template.render(values)
    return refused


def _region(e164: str) -> str:
    from contacts.phones import region_of

    return region_of(e164)


def status_callback_for(callback: str | None, message_id: int) -> str | None:
    """The status callback URL for one message: it names the message, so a callback that arrives before the worker
    has recorded the provider's SID still finds it (a provider signs the whole URL, query included)."""
    return callback_url_for(callback, message_id)


# Set-based writes of many rows with values of their own


def _claim_value(token: uuid.UUID | None) -> Any:
    return OutboundMessage._meta.get_field("claim").get_db_prep_value(token, connection)


def _stamp(value: dt.datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def _update_each(
    *,
    to: str | None,
    rows: Sequence[tuple[int, uuid.UUID | None, Sequence[Any]]],
    columns: Sequence[str],
    sets: Sequence[str],
    fixed: dict[str, Any] | None = None,
    where: str = "",
) -> list[int]:
    """One ``WITH v(…) AS (VALUES …) UPDATE … FROM v`` for rows that each get values of their own.

    ``rows`` are (id, claim token, values for ``columns``); ``sets`` are the SET expressions over ``v.<column>``.
    With ``to`` the status moves too, only from a status that allows it and only for the claim's holder. Returns the
    ids that changed.
    """
    if not rows:
        return []
    table = OutboundMessage._meta.db_table
    now = _stamp(timezone.now())
    assignments = list(sets)
    params: list[Any] = []
    fixed = dict(fixed or {})
    conditions = [f"{table}.id = v.id"]
    if to is not None:
        assignments += ["status = %s", f"{TIMESTAMP_FIELD[to]} = %s"]
        params += [to, now]
        allowed = sorted(OutboundMessage.allowed_from(to))
        conditions.append(f"{table}.status IN ({', '.join(['%s'] * len(allowed))})")
        conditions.append(f"{table}.claim = v.claim")
    assignments.append("updated_at = %s")
    params.append(now)
    for name, value in fixed.items():
        assignments.append(f"{name} = %s")
        params.append(value)
    names = ["id", "claim", *columns]
    values_sql = ", ".join("(" + ", ".join(["%s"] * len(names)) + ")" for _ in rows)
    values_params: list[Any] = []
    for pk, token, values in rows:
        values_params += [pk, _claim_value(token), *values]
    sql = (
        f"WITH v({', '.join(names)}) AS (VALUES {values_sql}) "  # noqa: S608 (names from models, values bound)
        f"UPDATE {table} SET {', '.join(assignments)} FROM v WHERE {' AND '.join(conditions)}{where} "
        f"RETURNING {table}.id"
    )
    if to is not None:
        params += allowed
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values_params, *params])
        moved = sorted(int(r[0]) for r in cursor.fetchall())
    if to is not None and moved:
        message_status_changed.send(sender=OutboundMessage, message_ids=moved, status=to)
    return moved


def _numeric(column: str) -> str:
    return f"CAST(v.{column} AS NUMERIC)"


def _stamp_ids(ids: list[int], token: Any, provider: str = "") -> set[int]:
    """Commit "this attempt may reach the provider" for the rows among ``ids`` still held under ``token``; with
    ``provider`` (its registered name), record it in the same statement."""
    now = _stamp(timezone.now())
    table = OutboundMessage._meta.db_table
    sql = (
        f"UPDATE {table} SET provider_called_at = %s, attempts = attempts + 1, updated_at = %s"  # noqa: S608
        f"{', provider = %s' if provider else ''} "
        f"WHERE id IN ({', '.join(['%s'] * len(ids))}) AND status = %s AND claim = %s "
        "AND provider_called_at IS NULL RETURNING id"
    )
    named = [provider] if provider else []
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, now, *named, *ids, Status.SENDING, _claim_value(token)])
        return {int(r[0]) for r in cursor.fetchall()}


def _mark_provider_called(rows: list[OutboundMessage], *, provider: str = "") -> list[OutboundMessage]:
    """Stamp rows from this thread (inside a caller's transaction): the rows still this worker's, stamped."""
    now = timezone.now()
    stamped: set[int] = set()
    by_token: dict[Any, list[OutboundMessage]] = defaultdict(list)
    for row in rows:
        by_token[row.claim].append(row)
    for token, group in by_token.items():
        stamped |= _stamp_ids([r.pk for r in group], token, provider)
    mine = [r for r in rows if r.pk in stamped]
    for row in mine:
        row.provider_called_at = now
        row.attempts += 1
        row.provider = provider or row.provider
    return mine


def _unmark_provider_called(rows: list[OutboundMessage]) -> list[OutboundMessage]:
    """Take back the stamp of calls that never started (``_NotYet``): one statement per claim token."""
    table = OutboundMessage._meta.db_table
    back: set[int] = set()
    by_token: dict[Any, list[OutboundMessage]] = defaultdict(list)
    for row in rows:
        by_token[row.claim].append(row)
    for token, group in by_token.items():
        ids = [r.pk for r in group]
        sql = (
            f"UPDATE {table} SET provider_called_at = NULL, attempts = attempts - 1 "  # noqa: S608
            f"WHERE id IN ({', '.join(['%s'] * len(ids))}) AND status = %s AND claim = %s "
            "AND provider_called_at IS NOT NULL RETURNING id"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [*ids, Status.SENDING, _claim_value(token)])
            back.update(int(r[0]) for r in cursor.fetchall())
    mine = [r for r in rows if r.pk in back]
    for row in mine:
        row.provider_called_at = None
        row.attempts -= 1
    return mine


def _hand_back(
    rows: list[OutboundMessage], *, schedule: str = Schedule.NONE, until: dict[int, float] | None = None
) -> list[int]:
    """Return claimed rows to ``queued``: parked in their sender's line (the pacer's), held until their reserved slot,
    or due again at ``until`` (quiet hours). A row due later than ``SMS_WAKE_HORIZON_SECONDS`` is parked: the pacer
    wakes it when it is due, rather than a broker holding a countdown task for hours."""
    if not rows:
        return []
    wake_horizon = float(_setting("SMS_WAKE_HORIZON_SECONDS", 120))
    now = time.time()
    values: list[tuple[int, uuid.UUID | None, Sequence[Any]]] = []
    later: dict[int, float] = {}
    for row in rows:
        at = (until or {}).get(row.pk)
        row_schedule = schedule
        if at is not None and schedule == Schedule.NONE and at - now > wake_horizon:
            row_schedule = Schedule.PARKED
        # A parked row keeps its place in the line (its next_attempt_at); the others are due at ``at``.
        next_at = (row.next_attempt_at or timezone.now()) if at is None else dt.datetime.fromtimestamp(at, tz=dt.UTC)
        if row_schedule != Schedule.PARKED:
            later[row.pk] = max(0.0, (at or now) - now)
        values.append((row.pk, row.claim, [_stamp(next_at), row_schedule]))
    moved = _update_each(
        to=Status.QUEUED,
        rows=values,
        columns=["next_attempt_at", "schedule"],
        sets=["next_attempt_at = v.next_attempt_at", "schedule = v.schedule"],
        fixed={"claim": None},
    )
    _wake(moved, later, priority={r.pk: r.priority for r in rows})
    return moved


def _wake(moved: Iterable[int], countdowns: dict[int, float], *, priority: dict[int, bool]) -> None:
    """Tasks for rows handed back with a due time (not parked), grouped by due time to a tenth of a second. Rounded
    up: the claim takes a row only once it is due, so a task that came early would find nothing and leave the row
    to the sweeper."""
    groups: dict[tuple[bool, int], list[int]] = defaultdict(list)
    for pk in moved:
        if pk in countdowns:
            groups[(priority[pk], math.ceil(round(countdowns[pk] * 10, 6)))].append(pk)  # never before it is due
    for (is_priority, tenths), ids in groups.items():
        enqueue_after_commit(sorted(ids), priority=is_priority, countdown=tenths / 10)


def _retry_delay(attempts: int) -> float:
    """Exponential backoff with full jitter: base * 2^(attempt-1), capped, times a random factor in [0.5, 1]."""
    base = float(_setting("SMS_RETRY_BASE_SECONDS", 30))
    cap = float(_setting("SMS_RETRY_MAX_SECONDS", 3600))
    delay = min(cap, base * (2 ** max(0, attempts - 1)))
    return delay * (0.5 + random.random() / 2)


class _RetryWakes:
    """The tasks of a batch's retries, one per priority and second they are due in, across all its outcome writes.

    A retry is due seconds to minutes later (``_retry_delay``). Woken one write at a time (a write holds the few calls
    that finished together), a burst of 429s gave each write its own tasks of one to three rows: in a 10,000-message
    broadcast against a fifth of requests refused, hundreds of such tasks crowded the workers' queue ahead of the
    1,000-row batches, and the broadcast sent a tenth of its rate for its first minute (bench/faults.py). Here a
    retry waits in memory until its second is ``RETRY_WAKE_SOON_SECONDS`` away or the batch ends, then shares one task
    per second of due time with every retry of the batch due in that second. A worker that dies first loses only the
    tasks: the rows are ``queued`` with their due time, and the sweeper queues them again."""

    def __init__(self) -> None:
        self.due: dict[tuple[bool, int], list[int]] = defaultdict(list)

    def add(self, ids: Iterable[int], *, at: dict[int, float], priority: dict[int, bool]) -> None:
        for pk in ids:
            if pk in at:
                # Rounded up to the second: the claim takes a row only once it is due (``_wake``).
                self.due[(priority[pk], math.ceil(round(at[pk], 6)))].append(pk)

    def flush(self, *, everything: bool) -> None:
        now = time.time()
        for key in sorted(self.due):
            is_priority, second = key
            if everything or second - now <= RETRY_WAKE_SOON_SECONDS:
                ids = self.due.pop(key)
                enqueue_after_commit(sorted(ids), priority=is_priority, countdown=max(0.0, second - now))


def _write_outcomes(
    finished: list[tuple[OutboundMessage, Any]], outcome: BatchOutcome, *, wakes: _RetryWakes | None = None
) -> None:
    """Outcomes that finished together: one statement per kind (sent, failed, retried, unknown). Retries are woken
    through ``wakes`` when given (the batch's, which groups them), else at once."""
    from providers.base import ErrorKind, ProviderError, SendResult

    sent: list[tuple[OutboundMessage, SendResult]] = []
    failed: list[tuple[OutboundMessage, str, str]] = []
    unknown: list[tuple[OutboundMessage, str, str]] = []
    retry: list[tuple[OutboundMessage, str, str, float]] = []
    opted_out: list[tuple[OutboundMessage, ProviderError]] = []
    bad_address: dict[int, tuple[str, str, str, str]] = {}  # counted towards a bounce once the failure is written
    max_attempts = int(_setting("SMS_MAX_ATTEMPTS", 5))
    # A refusal for coming too fast says nothing about the message: it gets a budget of its own, hours of backoff at
    # the default delays, so that a burst of 429s (a busy account, other senders on it) does not fail a broadcast's
    # messages after the few attempts a server error gets.
    max_throttled = max(max_attempts, int(_setting("SMS_MAX_THROTTLED_ATTEMPTS", 12)))
    for row, result in finished:
        if isinstance(result, SendResult):
            sent.append((row, result))
            continue
        if not isinstance(result, ProviderError):
            # A bug or an unexpected library error: the request may have gone out.
            logger.error("provider send raised for outbound message %s", row.pk, exc_info=result)
            unknown.append((row, "exception", str(result)[:500]))
            continue
        code, message = str(result.code)[:32], str(result.message)[:1000]
        if result.kind == ErrorKind.TRANSIENT and result.may_have_sent:
            unknown.append((row, code, message))  # a timeout after the request left: resending could text twice
        elif result.kind == ErrorKind.TRANSIENT and row.attempts < (
            max_throttled if result.throttled else max_attempts
        ):
            retry.append((row, code, message, _retry_delay(row.attempts)))
        elif result.kind == ErrorKind.TRANSIENT:
            failed.append((row, code, f"Gave up after {row.attempts} attempts: {message}"[:1000]))
        else:
            failed.append((row, code, message))
            if result.kind == ErrorKind.OPT_OUT:
                opted_out.append((row, result))
            elif result.kind == ErrorKind.BAD_ADDRESS:
                bad_address[row.pk] = (row.channel, row.to_number, code, row.provider)
    if sent:
        outcome.sent.extend(_write_sent(sent))
    if failed:
        moved = _update_each(
            to=Status.FAILED,
            rows=[(r.pk, r.claim, [code, message]) for r, code, message in failed],
            columns=["error_code", "error_message"],
            sets=["error_code = v.error_code", "error_message = v.error_message"],
        )
        outcome.failed.extend(moved)
        bad_address_failures_record(failures=[bad_address[pk] for pk in moved if pk in bad_address])
    if unknown:
        outcome.unknown.extend(
            _update_each(
                to=Status.UNKNOWN,
                rows=[(r.pk, r.claim, [code, message]) for r, code, message in unknown],
                columns=["error_code", "error_message"],
                sets=["error_code = v.error_code", "error_message = v.error_message"],
            )
        )
    if retry:
        outcome.retried.extend(_write_retries(retry, wakes=wakes))
    for row, error in opted_out:
        if row.contact is not None:
            dnc_add(
                contact=row.contact,
                reason=DoNotContact.Reason.UNSUBSCRIBED,
                source=DoNotContact.Source.PROVIDER,
                comment=registry.describe_error(error.code, error.message, provider=row.provider)[:500],
            )


def _write_sent(sent: list[tuple[OutboundMessage, Any]]) -> list[int]:
    def values(row: OutboundMessage, result: Any) -> list[Any]:
        price = str(result.price) if result.price is not None else None
        return [result.sid, price, result.price_unit or "", result.segments or row.segments]

    rows = [(row.pk, row.claim, values(row, result)) for row, result in sent]
    columns = ["sid", "price", "price_unit", "segments"]
    moved = _update_each(
        to=Status.SENT,
        rows=rows,
        columns=columns,
        sets=[
            "provider_sid = v.sid",
            f"price = {_numeric('price')}",
            "price_unit = v.price_unit",
            "segments = v.segments",
        ],
        fixed={"error_code": "", "error_message": ""},
    )
    overtaken = [r for r in rows if r[0] not in set(moved)]
    if overtaken:
        # A status callback can arrive before this write: it attached the SID (through the message id in its URL)
        # and moved the message on already. Keep what only the API answer tells, and count the message as sent.
        sent_now = _stamp(timezone.now())
        moved += _update_each(
            to=None,
            rows=[(pk, token, [*values, sent_now]) for pk, token, values in overtaken],
            columns=[*columns, "sent_now"],
            sets=[
                f"price = {_numeric('price')}",
                "price_unit = v.price_unit",
                "segments = v.segments",
                "sent_at = COALESCE(sent_at, v.sent_now)",
            ],
            where=f" AND {OutboundMessage._meta.db_table}.provider_sid = v.sid",
        )
    return sorted(moved)


def _write_retries(
    retry: list[tuple[OutboundMessage, str, str, float]], *, wakes: _RetryWakes | None = None
) -> list[int]:
    """Back to the queue with backoff: soon ones with a task due then, later ones parked for the pacer to wake."""
    wake_horizon = float(_setting("SMS_WAKE_HORIZON_SECONDS", 120))
    now = time.time()
    rows = []
    due_at: dict[int, float] = {}  # Unix time
    for row, code, message, delay in retry:
        schedule = Schedule.NONE if delay <= wake_horizon else Schedule.PARKED
        if schedule == Schedule.NONE:
            due_at[row.pk] = now + delay
        next_at = dt.datetime.fromtimestamp(now + delay, tz=dt.UTC)
        rows.append((row.pk, row.claim, [code, message, _stamp(next_at), schedule]))
    moved = _update_each(
        to=Status.QUEUED,
        rows=rows,
        columns=["error_code", "error_message", "next_attempt_at", "schedule"],
        sets=[
            "error_code = v.error_code",
            "error_message = v.error_message",
            "next_attempt_at = v.next_attempt_at",
            "schedule = v.schedule",
        ],
        fixed={"claim": None},
    )
    own = wakes is None
    wakes = wakes or _RetryWakes()
    wakes.add(moved, at=due_at, priority={r.pk: r.priority for r, *_ in retry})
    if own:
        wakes.flush(everything=True)
    return moved


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
