"""Status callbacks out of the request: the callback appends the status to a Redis list and answers; a flusher on
``sms_priority`` applies what accumulated in one set-based statement per batch (the design of RapidPro's courier,
which batches status writes through Redis and a committer).

Why: in the request a status statement cost ~450 µs of PostgreSQL and ~200 µs more of the web process than the push
that replaces it; in batches of hundreds PostgreSQL spends ~110 µs per status (bench/webhooks.py, README "Webhooks").
Inbound replies (STOP & co.) never come here: they are stored and acted on in the request, durably.

The guarantees:

- **Nothing lost.** A flusher *claims* a batch: one script moves it from the buffer to a claim list of its own
  (``smsapp:statuses:claim:<token>``, listed with its time in ``smsapp:statuses:claims``), applies it in one
  transaction that waits for the disk, and only then deletes the claim. A flusher that dies (or whose database call
  fails) leaves its claim, which goes back to the buffer after ``SMS_STATUS_FLUSH_STALE_SECONDS`` (at once on a
  failure it sees). Applying a batch twice changes nothing more than applying it once (a status never moves back, a
  timeline entry is written only by the move that makes it, Do Not Contact keeps its active entry): at least once
  is exactly once in effect.
- **No Redis, no buffer.** A callback that cannot reach Redis applies its status synchronously as before (never a
  5xx, never a lost status), and so do the embedded defaults (no ``REDIS_URL``), SQLite, and
  ``SMS_STATUS_BUFFER=false``. A status that Redis itself lost in a crash (it runs with ``--appendonly yes``, which
  writes to disk every second) is one whose message stays `sent`: ``reconcile_statuses`` fetches it from the provider.
- **About a second.** The first push after a flush sets a "flush pending" flag (``SET NX``, in the same round trip
  as the push) and enqueues one flush task with a countdown of ``SMS_STATUS_FLUSH_DELAY_SECONDS``; the task clears the
  flag before it drains, so a push during the drain arms the next one (which takes what came meanwhile: a flush stops
  after a batch that was not full), and it enqueues itself again while the buffer is not empty. Beat runs it every
  ``SMS_STATUS_FLUSH_INTERVAL_SECONDS`` as a safety net (a lost task, a stale claim).
- **The same effects.** A batch ends where the same callbacks applied one by one would (a test compares the two on
  random callbacks), ``message_status_changed`` is sent after commit once per status, an opt-out error still opts the
  recipient out, and a status is stamped with the time its callback came, not the time it was applied.
"""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from contacts.models import DoNotContact, TimelineEvent
from contacts.services import dnc_add_many
from providers import registry
from providers.base import ErrorKind, StatusEvent
from smsapp.core.celery import task

from .bounces import FAILURES, bad_address_failures_record
from .inbound import FINAL, STATUS_OF_STATE, outbound_status_apply
from .models import ALLOWED_FROM, RANK, TIMESTAMP_FIELD, OutboundMessage, Status, TextMessage
from .signals import message_status_changed

logger = logging.getLogger(__name__)

BUFFER_KEY = "smsapp:statuses"
PENDING_KEY = "smsapp:statuses:pending"
RECHECK_KEY = "smsapp:statuses:recheck"
CLAIMS_KEY = "smsapp:statuses:claims"
CLAIM_PREFIX = "smsapp:statuses:claim:"
# After a Redis error, this process applies statuses synchronously for this long before it tries Redis again, so an
# outage costs one failed connection per process per interval rather than one per callback.
REDIS_RETRY_SECONDS = 5.0
# A flush task drains for at most this long, then enqueues another: the pacer and the priority sends share its queue.
FLUSH_BUDGET_SECONDS = 2.0


@dataclass(frozen=True)
class BufferedStatus:
    """One status callback as the buffer keeps it: what the synchronous path would have applied, and when it came."""

    message_sid: str
    status: str  # the outbound log's status (``STATUS_OF_STATE`` applied)
    error_code: str = ""
    outbound_id: int | None = None  # the ``?m=`` of the callback URL
    received_at: float = 0.0  # Unix time
    provider: str = ""  # the registered name of the provider that reported it: it says what its error code means

    def dumps(self) -> str:
        values = [self.message_sid, self.status, self.error_code, self.outbound_id, self.received_at, self.provider]
        return json.dumps(values, separators=(",", ":"))

    @classmethod
    def loads(cls, raw: bytes | str) -> BufferedStatus:
        sid, status, error_code, outbound_id, received_at, *rest = json.loads(raw)  # 5 items: buffered before 0.3
        outbound = int(outbound_id) if outbound_id else None
        return cls(str(sid), str(status), str(error_code), outbound, received_at, str(rest[0]) if rest else "")

    def opted_out(self) -> bool:
        """The error code says the recipient unsubscribed (the provider that reported it decides)."""
        kind = registry.error_kind(self.error_code, provider=self.provider) if self.error_code else None
        return kind == ErrorKind.OPT_OUT


@dataclass
class BatchResult:
    moved: dict[str, list[int]] = field(default_factory=dict)  # status -> ids of the messages that moved to it
    unknown: list[str] = field(default_factory=list)  # SIDs no message has (logged, ignored, as synchronously)
    opted_out: list[int] = field(default_factory=list)  # contacts newly Do Not Contact by an opt-out error
    bounced: list[tuple[str, str]] = field(default_factory=list)  # (channel, address) newly suppressed as bounced


@dataclass
class FlushResult:
    applied: int = 0
    batches: int = 0
    recovered: int = 0  # statuses of stale claims put back in the buffer
    left: int = 0  # still in the buffer when the flush stopped (another flush is then enqueued)


# The request side


def status_buffer_enabled() -> bool:
    """Buffer status callbacks? Only with Redis and PostgreSQL (the batch statement is PostgreSQL's)."""
    return bool(settings.REDIS_URL) and settings.SMS_STATUS_BUFFER and connection.vendor == "postgresql"


def outbound_status_receive(*, event: StatusEvent, outbound_id: int | None = None) -> str:
    """What the callback view calls for a status callback: buffer it for the flusher, or apply it now.

    Returns ``"buffered"``, ``"applied"`` (synchronously: no buffer here, or Redis unreachable) or ``"ignored"`` (a
    status a provider may send that means nothing to the log). Never raises for Redis: the provider must get a 200.
    """
    target = STATUS_OF_STATE.get(event.status)
    if target is None:
        logger.warning("status callback %s with a status not understood: %r", event.message_sid, event.status)
        return "ignored"
    if status_buffer_enabled():
        status = BufferedStatus(
            event.message_sid, target, event.error_code, outbound_id, time.time(), provider=event.provider
        )
        if settings.SMS_STATUS_RELAY:
            _relay().add(status)
            return "buffered"
        if status_buffer_push(status=status):
            return "buffered"
    outbound_status_apply(event=event, outbound_id=outbound_id)
    return "applied"


class _Relay:
    """The web process's hop to the buffer: a callback hands its status over in memory and answers; a thread pushes
    what the callbacks of the last ``SMS_STATUS_RELAY_DELAY_SECONDS`` (50 ms) handed over in one round trip (one
    script, one RPUSH of all).

    Why: even one Redis round trip in the request cost more than the rest of a status callback beyond signature
    checking (bench/webhooks.py). What it risks: the statuses of those 50 ms die with the process if it is killed
    outright (a graceful stop pushes them first, at exit); their messages stay `sent` and reconciliation fetches their
    status from the provider. Redis unreachable: the thread applies them to the database itself.

    While callbacks keep coming the thread polls (every ``SMS_STATUS_RELAY_DELAY_SECONDS``) rather than being woken:
    waking a thread (``Event.set``, a futex and a thread switch) cost a callback more than the rest of the hand-over,
    so under load no callback wakes it. After ``IDLE_POLLS`` empty polls it sleeps until the next callback wakes it,
    so an idle process does not poll."""

    IDLE_POLLS = 20

    def __init__(self) -> None:
        self.items: list[BufferedStatus] = []
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.idle = True  # the thread waits for ``wake``; the next callback sets it
        threading.Thread(target=self._run, name="smsapp-status-relay", daemon=True).start()
        atexit.register(self.drain)

    def add(self, status: BufferedStatus) -> None:
        with self.lock:
            self.items.append(status)
            woken, self.idle = self.idle, False
        if woken:
            self.wake.set()

    def _run(self) -> None:
        empty = 0
        while True:
            self.wake.wait()  # set for as long as the thread polls: returns at once
            time.sleep(float(settings.SMS_STATUS_RELAY_DELAY_SECONDS))  # let the next few arrive: one round trip
            with self.lock:
                batch, self.items = self.items, []
                empty = 0 if batch else empty + 1
                if empty >= self.IDLE_POLLS:
                    # Under the lock: a callback from now on finds the thread idle and wakes it.
                    self.idle = True
                    self.wake.clear()
                    empty = 0
            try:
                self._push(batch)
            except Exception:  # the thread must live on; what it held is the reconciliation's now
                logger.exception("status relay: a batch could not be buffered nor applied")

    def drain(self) -> None:
        with self.lock:
            batch, self.items = self.items, []
        self._push(batch)

    @staticmethod
    def _push(batch: list[BufferedStatus]) -> None:
        if not batch or status_buffer_push(statuses=batch):
            return
        from django.db import close_old_connections

        close_old_connections()  # this thread's connection: a new one if the server went away meanwhile
        outbound_statuses_apply(statuses=batch)


_relay_of: tuple[int, _Relay] | None = None
_relay_lock = threading.Lock()


def _relay() -> _Relay:
    global _relay_of
    with _relay_lock:
        if _relay_of is None or _relay_of[0] != os.getpid():
            _relay_of = (os.getpid(), _Relay())
        return _relay_of[1]


# Per Redis URL: until when this process leaves that Redis alone after an error (``REDIS_RETRY_SECONDS``).
_down_until: dict[str, float] = {}


@functools.cache
def _client(pid: int, url: str) -> Any:
    """One client (and connection pool) per process: a forked worker must not share its parent's sockets."""
    import redis

    # Short timeouts: a callback that cannot reach Redis soon applies its status itself, well inside Twilio's 15 s.
    return redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)


def _redis() -> Any:
    return _client(os.getpid(), settings.REDIS_URL)


def _redis_errors() -> tuple[type[Exception], ...]:
    import redis

    # Any of them (unreachable, a timeout, a Redis out of memory or read-only): the status is applied in the request.
    return (redis.exceptions.RedisError,)


def status_buffer_push(*, status: BufferedStatus | None = None, statuses: Sequence[BufferedStatus] = ()) -> bool:
    """Append statuses to the buffer, in one round trip; arm a flush if none is pending. False when Redis could not
    be reached (the caller then applies the statuses itself)."""
    batch = [*statuses, *([status] if status is not None else [])]
    if not batch:
        return True
    url = settings.REDIS_URL
    if time.monotonic() < _down_until.get(url, 0.0):
        return False
    delay = float(settings.SMS_STATUS_FLUSH_DELAY_SECONDS)
    try:
        armed = _scripts(os.getpid(), url).push(
            keys=[BUFFER_KEY, PENDING_KEY], args=[_pending_ttl(delay), *(s.dumps() for s in batch)], client=_redis()
        )
    except _redis_errors():
        if len(batch) == 1:
            logger.warning(
                "status callback %s: Redis unreachable, applying it now", batch[0].message_sid, exc_info=True
            )
        else:
            logger.warning("status callbacks: Redis unreachable, applying %d now", len(batch), exc_info=True)
        _down_until[url] = time.monotonic() + REDIS_RETRY_SECONDS
        return False
    # Not armed: a flush is pending already. Armed but not enqueued: the status is in Redis, yet no flush will come
    # before beat's, so the caller applies it now as well (twice is harmless).
    return not armed or _enqueue_flush(countdown=delay)


def _pending_ttl(delay: float) -> int:
    # The flag outlives a flush task that was lost (a killed worker), so that a later push arms another one.
    return max(10, int(delay * 4) + 1)


def _enqueue_flush(*, countdown: float, flag: str = PENDING_KEY) -> bool:
    try:
        task("texts.statuses_flush").apply_async(queue="sms_priority", countdown=countdown)
    except Exception:  # the broker (Redis too) went away between the push and here
        logger.warning("status buffer: could not enqueue a flush; beat's safety net will", exc_info=True)
        try:
            _redis().delete(flag)
        except _redis_errors():
            pass
        return False
    return True


# The flusher

# Append ARGV[2:] to the buffer and set the "flush pending" flag (TTL ARGV[1]) unless it is set; 1 when this push
# set it (and so arms a flush). One script, one reply: the cheapest round trip the relay can make. RPUSH a thousand
# at a time: Redis's Lua unpacks at most ~8,000 values into one call (a relay's batch can be bigger).
_PUSH = """
for i = 2, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then return 1 end
return 0
"""

# Take up to ARGV[1] statuses from the head of the buffer into this flusher's claim list (KEYS[3]) and list the claim
# with Redis's clock, all or nothing.
_CLAIM = """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items == 0 then return items end
redis.call('LTRIM', KEYS[1], #items, -1)
for i = 1, #items, 1000 do
  redis.call('RPUSH', KEYS[3], unpack(items, i, math.min(i + 999, #items)))
end
local now = redis.call('TIME')
redis.call('ZADD', KEYS[2], tonumber(now[1]) + tonumber(now[2]) / 1e6, ARGV[2])
return items
"""

# Put back at the head of the buffer every claim older than ARGV[1] seconds (or the one named in ARGV[3]); returns
# how many statuses went back.
_RECOVER = """
local tokens
if ARGV[3] ~= '' then
  tokens = {ARGV[3]}
else
  local now = redis.call('TIME')
  tokens = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', tonumber(now[1]) + tonumber(now[2]) / 1e6 - tonumber(ARGV[1]))
end
local count = 0
for _, token in ipairs(tokens) do
  local key = ARGV[2] .. token
  local items = redis.call('LRANGE', key, 0, -1)
  for i = #items, 1, -1 do  -- last first, so the claim is back at the head in the order it came
    redis.call('LPUSH', KEYS[1], items[i])
  end
  count = count + #items
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[2], token)
end
return count
"""


class _Scripts:
    def __init__(self, client: Any) -> None:
        self.push = client.register_script(_PUSH)
        self.claim = client.register_script(_CLAIM)
        self.recover = client.register_script(_RECOVER)


@functools.cache
def _scripts(pid: int, url: str) -> _Scripts:
    return _Scripts(_client(pid, url))


def _claim(client: Any, scripts: _Scripts, batch: int) -> tuple[str, list[bytes]]:
    token = uuid.uuid4().hex
    items = scripts.claim(keys=[BUFFER_KEY, CLAIMS_KEY, CLAIM_PREFIX + token], args=[batch, token], client=client)
    return token, list(items)


def _release(client: Any, token: str) -> None:
    """The claim's statuses are committed: forget them."""
    pipe = client.pipeline(transaction=True)
    pipe.delete(CLAIM_PREFIX + token)
    pipe.zrem(CLAIMS_KEY, token)
    pipe.execute()


def status_buffer_recover(*, stale_seconds: float | None = None, token: str = "") -> int:
    """Put the statuses of claims older than ``stale_seconds`` (a flusher that died) back in the buffer."""
    stale = float(settings.SMS_STATUS_FLUSH_STALE_SECONDS if stale_seconds is None else stale_seconds)
    client = _redis()
    scripts = _scripts(os.getpid(), settings.REDIS_URL)
    return int(scripts.recover(keys=[BUFFER_KEY, CLAIMS_KEY], args=[stale, CLAIM_PREFIX, token], client=client))


def _parse(items: list[bytes]) -> list[BufferedStatus]:
    statuses = []
    for raw in items:
        try:
            statuses.append(BufferedStatus.loads(raw))
        except (ValueError, TypeError):
            # Only this module writes the buffer; an entry it cannot read is a bug, kept in the log rather than retried
            # forever.
            logger.error("status buffer: dropping an entry that cannot be read: %r", raw[:200])
    return statuses


def status_buffer_flush(*, batch: int | None = None, budget_seconds: float | None = None) -> FlushResult:
    """Apply what the buffer holds, a batch at a time, for at most ``budget_seconds``; enqueue another flush if
    anything is left (or a claim of a dead flusher will be stale later)."""
    if not settings.REDIS_URL:
        return FlushResult()
    size = int(batch or settings.SMS_STATUS_FLUSH_BATCH)
    budget = FLUSH_BUDGET_SECONDS if budget_seconds is None else budget_seconds
    client = _redis()
    scripts = _scripts(os.getpid(), settings.REDIS_URL)
    result = FlushResult()
    # First: a push from now on arms the next flush, so nothing pushed during this one waits for beat.
    client.delete(PENDING_KEY)
    result.recovered = status_buffer_recover()
    deadline = time.monotonic() + budget
    while True:
        token, items = _claim(client, scripts, size)
        if not items:
            break
        try:
            outbound_statuses_apply(statuses=_parse(items))
        except BaseException:
            # Back to the buffer now rather than when the claim goes stale; the task retries.
            status_buffer_recover(token=token)
            raise
        _release(client, token)
        result.applied += len(items)
        result.batches += 1
        # Less than a full batch: the backlog is drained, and what was pushed meanwhile armed the next flush (the
        # flag was cleared first), which takes it in one batch. Chasing it here cost a transaction and a wait for the
        # disk per few dozen statuses, and PostgreSQL and Redis three times the CPU per status (bench/webhooks.py).
        if len(items) < size or time.monotonic() >= deadline:
            break
    result.left = int(client.llen(BUFFER_KEY))
    _rearm(client, result.left)
    return result


def _rearm(client: Any, left: int) -> None:
    if left:
        delay = float(settings.SMS_STATUS_FLUSH_DELAY_SECONDS)
        if client.set(PENDING_KEY, "1", nx=True, ex=_pending_ttl(delay)):
            _enqueue_flush(countdown=delay)
        return
    oldest = client.zrange(CLAIMS_KEY, 0, 0, withscores=True)
    if not oldest:
        return
    # Another flusher's claim: come back when it would be stale, in case that flusher died. A flag of its own, so
    # that this one delayed flush never holds back the pending flag of the pushes meanwhile.
    stale_at = float(oldest[0][1]) + float(settings.SMS_STATUS_FLUSH_STALE_SECONDS)
    countdown = max(float(settings.SMS_STATUS_FLUSH_DELAY_SECONDS), stale_at - time.time() + 0.1)
    if client.set(RECHECK_KEY, "1", nx=True, ex=max(1, int(countdown))):  # gone when that flush is due
        _enqueue_flush(countdown=countdown, flag=RECHECK_KEY)


# The batch statement

_OUTBOUND = OutboundMessage._meta.db_table
_TEXTS = TextMessage._meta.db_table
_TIMELINE = TimelineEvent._meta.db_table
_TARGETS = sorted(set(STATUS_OF_STATE.values()))  # the statuses a callback can move a message to
_HINTED = (Status.SENDING, Status.UNKNOWN)  # a message the ``?m=`` may attach a SID to (as ``_attach_sid``)


def _sql_list(values: Sequence[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)  # status names from the model, never input


def _batch_sql() -> str:
    allowed = ", ".join(f"('{t}', ARRAY[{_sql_list(sorted(ALLOWED_FROM[t]))}]::text[])" for t in _TARGETS)
    stamps = ", ".join(
        f"{TIMESTAMP_FIELD[t]} = CASE WHEN w.target = '{t}' THEN w.at ELSE m.{TIMESTAMP_FIELD[t]} END" for t in _TARGETS
    )
    finals = _sql_list(FINAL)
    return f"""
WITH v AS (
  SELECT * FROM unnest(%(seq)s::int[], %(sid)s::text[], %(target)s::text[], %(rank)s::int[], %(error)s::text[],
                       %(hint)s::bigint[], %(at)s::timestamptz[]) AS v(seq, sid, target, rank, error_code, hint, at)
), allowed(target, froms) AS (VALUES {allowed}
), resolved AS (
  -- The message of each status: by its SID, else (the callback overtook the worker's write of the SID, or the
  -- worker died after calling the provider) the one its URL names, if that one is waiting for a SID.
  SELECT v.*, COALESCE(s.id, h.id) AS mid, COALESCE(s.contact_id, h.contact_id) AS contact_id
  FROM v
  LEFT JOIN {_OUTBOUND} s ON s.provider_sid = v.sid
  LEFT JOIN {_OUTBOUND} h ON s.id IS NULL AND h.id = v.hint AND h.provider_sid IS NULL
    AND h.provider_called_at IS NOT NULL AND h.status IN ({_sql_list(_HINTED)})
), winner AS (
  -- Per message, what applying the statuses one by one in arrival order ends with: of those its status allows, the
  -- highest, and of the highest the first (a move only ever raises the rank, and a final status is final).
  SELECT DISTINCT ON (r.mid) r.mid, r.sid, r.target, r.error_code, r.at, a.froms
  FROM resolved r JOIN {_OUTBOUND} m ON m.id = r.mid JOIN allowed a ON a.target = r.target
  WHERE m.status = ANY(a.froms)
  ORDER BY r.mid, r.rank DESC, r.seq
), moved AS (
  -- The row lock and PostgreSQL's re-check of this WHERE after waiting for it: a concurrent writer (the worker, a
  -- synchronous callback) that moved the message first wins, and this one does not move it back.
  UPDATE {_OUTBOUND} m SET status = w.target, {stamps},
    error_code = CASE WHEN w.error_code <> '' THEN w.error_code ELSE m.error_code END,
    provider_sid = COALESCE(m.provider_sid, w.sid), updated_at = %(now)s
  FROM winner w
  WHERE m.id = w.mid AND m.status = ANY(w.froms) AND (m.provider_sid = w.sid OR m.provider_sid IS NULL)
  RETURNING m.id, m.contact_id, m.status, m.text_message_id, w.error_code AS event_error, w.at, m.to_number,
    m.channel, m.provider
), entry AS (
  INSERT INTO {_TIMELINE} (contact_id, kind, title, detail, occurred_at, created_at)
  SELECT mv.contact_id,
    CASE WHEN mv.status = 'delivered' THEN 'sms.delivered' ELSE 'sms.failed' END,
    LEFT(CASE WHEN mv.status = 'delivered' THEN 'Text message delivered: ' ELSE 'Text message ' || mv.status || ': '
         END || COALESCE(t.name, 'Text message'), 255),
    jsonb_build_object('outbound_id', mv.id, 'status', mv.status::text, 'error_code', mv.event_error::text),
    mv.at, %(now)s
  FROM moved mv LEFT JOIN {_TEXTS} t ON t.id = mv.text_message_id
  WHERE mv.contact_id IS NOT NULL AND mv.status IN ({finals})
)
SELECT 'moved', mv.id, mv.contact_id, mv.status, mv.event_error, mv.to_number, mv.channel, mv.provider FROM moved mv
UNION ALL
SELECT 'status', r.seq, r.contact_id, CASE WHEN r.mid IS NULL THEN NULL ELSE 'found' END, NULL, NULL, NULL, NULL
FROM resolved r
"""  # noqa: S608 (table and status names from the models)


@functools.cache
def _statement() -> str:
    return _batch_sql()


def _params(statuses: Sequence[BufferedStatus]) -> dict[str, Any]:
    now = timezone.now()
    at = [dt.datetime.fromtimestamp(s.received_at, tz=dt.UTC) if s.received_at else now for s in statuses]
    return {
        "seq": list(range(len(statuses))),
        "sid": [s.message_sid for s in statuses],
        "target": [s.status for s in statuses],
        "rank": [RANK[Status(s.status)] for s in statuses],
        "error": [s.error_code[:32] for s in statuses],
        "hint": [s.outbound_id for s in statuses],
        "at": at,
        "now": now,
    }


def outbound_statuses_apply(*, statuses: Sequence[BufferedStatus]) -> BatchResult:
    """Apply buffered status callbacks in one statement (PostgreSQL) and one transaction that waits for the disk: the
    moves, their timeline entries, and Do Not Contact for an opt-out error. Safe to apply the same batch again."""
    result = BatchResult()
    statuses = [s for s in statuses if s.status in _TARGETS]
    if not statuses:
        return result
    if connection.vendor != "postgresql":
        return _apply_one_by_one(statuses)
    for attempt in range(3):
        try:
            with transaction.atomic():
                return _apply(statuses)
        except OperationalError as exc:
            # Two writers locking the same messages in different orders (the worker's batched outcome write): one is
            # chosen to fail. The batch is intact; try it again.
            if attempt == 2 or not isinstance(exc.__cause__, psycopg.errors.DeadlockDetected):
                raise
            logger.info("status batch: deadlock with another writer, retrying")
    raise AssertionError("unreachable")


def _apply(statuses: Sequence[BufferedStatus]) -> BatchResult:
    result = BatchResult()
    with connection.cursor() as cursor:
        cursor.execute(_statement(), _params(statuses))
        rows = cursor.fetchall()
    opted_out: dict[tuple[str, str], set[int]] = {}  # (provider, error code) -> contacts
    failures: list[tuple[str, str, str, str]] = []  # a move to a failure: (channel, address, code, provider)
    for tag, n, contact_id, text, error, address, channel, provider in rows:
        if tag == "moved":
            result.moved.setdefault(text, []).append(int(n))
            if error and text in FAILURES:
                failures.append((str(channel), str(address), str(error), str(provider or "")))
            continue
        status = statuses[n]
        if text is None:
            result.unknown.append(status.message_sid)
        elif contact_id is not None and status.opted_out():
            opted_out.setdefault((status.provider, status.error_code), set()).add(int(contact_id))
    for ids in result.moved.values():
        ids.sort()
    for (provider, code), contact_ids in opted_out.items():
        result.opted_out += dnc_add_many(
            contact_ids=contact_ids,
            reason=DoNotContact.Reason.UNSUBSCRIBED,
            source=DoNotContact.Source.PROVIDER,
            comment=registry.describe_error(code, provider=provider)[:500],
        )
    # Counted on the move, once per message, however often the provider repeats the callback.
    result.bounced = bad_address_failures_record(failures=failures)
    if result.unknown:
        logger.info(
            "status callbacks for %d unknown message SIDs ignored: %s",
            len(result.unknown),
            ", ".join(result.unknown[:20]) + (" …" if len(result.unknown) > 20 else ""),
        )
    for status_name, ids in result.moved.items():
        transaction.on_commit(
            functools.partial(message_status_changed.send, sender=OutboundMessage, message_ids=ids, status=status_name)
        )
    return result


def _apply_one_by_one(statuses: Sequence[BufferedStatus]) -> BatchResult:
    """Not PostgreSQL (nothing is buffered there, but a buffer filled before the database changed is still
    applied): the synchronous path, one status at a time. Each status the buffer keeps is also the name of the
    delivery state that maps to it."""
    result = BatchResult()
    for s in statuses:
        event = StatusEvent(message_sid=s.message_sid, status=s.status, error_code=s.error_code, provider=s.provider)
        outbound_status_apply(event=event, outbound_id=s.outbound_id)
    return result
