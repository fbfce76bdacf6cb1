"""The product under faults, at scale: a broadcast to N contacts on a whole real stack while workers are killed,
Redis goes away, Twilio throttles and goes down, and PostgreSQL restarts.

    python -m smsapp.testing.services -- python bench/faults.py [--contacts 100000]

One ``Stack`` (fresh PostgreSQL database, its own Redis, fake_twilio, gunicorn, several Celery workers, beat). N
contacts are bulk-inserted in SQL into one static segment; a published broadcast text message carries a per-contact
token, so a duplicate at fake_twilio is countable by (To, Body). ``send_broadcasts`` runs as cron would, and while
the workers drain ``sms_bulk`` (fake_twilio answering 429 to a fifth of requests throughout):

1. PostgreSQL is restarted once (``pg_ctl restart -m fast``: every connection is cut);
2. fake_twilio refuses connections for 10 seconds;
3. a worker is killed with SIGKILL every few seconds (and a new one started);
4. Redis is stopped for 30 seconds (it keeps nothing: every queued task is gone) and started again.

Signed inbound replies go through fake_twilio to the public callback all along, Redis outage included. Recovery after
each fault is the time from its end until the send rate is back above half the steady rate measured before the first
fault (or the queue is empty). At the end (bounded by a deadline): messages sent, duplicates at fake_twilio, lost
(audience contacts with no row, or rows still queued/sending), ``unknown`` by reason, failed by error code, replies
sent vs stored. The last line is ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsapp.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("SMSAPP_IGNORE_DOTENV", "1")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("SMSAPP_VAR_DIR", tempfile.mkdtemp(prefix="smsapp-bench-faults-"))

# Short codes: 100 segments/s each, so the limiter allows 500/s and the faults, not the limiter, shape the curve.
SENDERS = tuple(f"+12345{i:02d}" for i in range(5))
PENDING = ("queued", "sending")
WINDOW = 5.0  # seconds over which a send rate is measured


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# The stack's database, read from this process with psycopg directly (a sampler thread and the main thread each
# open their own connection; either survives the PostgreSQL restart by reconnecting).


class Db:
    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Any = None

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        for attempt in range(30):
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
                with self._conn.cursor() as cursor:
                    cursor.execute(sql, params)
                    return list(cursor.fetchall()) if cursor.description else []
            except psycopg.OperationalError:
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                if attempt == 29:
                    raise
                time.sleep(1)
        raise AssertionError("unreachable")

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        self.query(sql, params)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


@dataclass
class Sampler:
    """Once a second: rows past ``sending`` (done) and rows queued or sending (pending) for the broadcast."""

    db: Db
    text_id: int
    samples: list[tuple[float, int, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)
        self.db.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                row = self.db.query(
                    "SELECT count(*) FILTER (WHERE status NOT IN ('queued', 'sending')), "
                    "count(*) FILTER (WHERE status IN ('queued', 'sending')) "
                    "FROM texts_outboundmessage WHERE text_message_id = %s",
                    (self.text_id,),
                )[0]
                self.samples.append((time.monotonic(), int(row[0]), int(row[1])))
            except Exception as exc:  # PostgreSQL down for longer than the retries: a gap in the samples
                log(f"sampler: {type(exc).__name__}")
            self._stop.wait(1.0)

    def latest(self) -> tuple[float, int, int]:
        return self.samples[-1] if self.samples else (time.monotonic(), 0, 1)

    def done_at(self, when: float) -> int:
        """Rows done at the last sample at or before ``when``."""
        best = 0
        for t, done, _ in self.samples:
            if t > when:
                break
            best = done
        return best

    def rate(self, start: float, end: float) -> float:
        return (self.done_at(end) - self.done_at(start)) / max(0.001, end - start)


@dataclass
class Replies:
    """Signed inbound replies through fake_twilio to the public callback, one every ``interval`` seconds."""

    stack: Any
    numbers: list[str]
    interval: float = 1.0
    sent: list[dict[str, Any]] = field(default_factory=list)  # sid, phase, status
    unreachable: int = 0  # fake_twilio itself down: nothing posted, nothing to count
    phase: str = "normal"
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=60)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            number = self.numbers[n % len(self.numbers)]
            try:
                record = self.stack.twilio.send_inbound(number, SENDERS[0], f"Thanks! reply {n} from bench")
            except OSError:
                self.unreachable += 1
            else:
                sid = record["params"]["MessageSid"]
                self.sent.append({"sid": sid, "phase": self.phase, "status": record["status"]})
            n += 1
            self._stop.wait(self.interval)


# Setup


def seed(db: Db, contacts: int) -> tuple[int, int]:
    """N contacts in SQL, one static segment of all of them, a published broadcast; returns (segment, text) ids."""
    started = time.monotonic()
    db.execute(
        """
        INSERT INTO contacts_contact (first_name, last_name, email, mobile, country, timezone, preferred_language,
                                      custom_fields, created_at, updated_at)
        SELECT 'P' || i, 'Fault', '', '+1646' || (2000000 + i)::text, 'US', 'America/New_York', 'en', '{}'::jsonb,
               now(), now()
        FROM generate_series(1, %s) AS i
        """,
        (contacts,),
    )
    segment = db.query(
        "INSERT INTO contacts_segment (name, description, kind, filters, member_count, created_at, updated_at) "
        "VALUES ('Everyone (faults bench)', '', 'static', '{}'::jsonb, %s, now(), now()) RETURNING id",
        (contacts,),
    )[0][0]
    db.execute(
        "INSERT INTO contacts_segmentmembership (segment_id, contact_id, manually_added, manually_removed, added_at) "
        "SELECT %s, id, true, false, now() FROM contacts_contact",
        (segment,),
    )
    # Transactional: quiet hours would hold a marketing message for contacts whose evening it is.
    text = db.query(
        "INSERT INTO texts_textmessage (name, body, language, category, is_published, media_urls, created_at, "
        "updated_at) VALUES ('Faults bench', 'Hi {{first_name}}, your code is {{first_name}}-OK. Reply STOP to opt "
        "out', 'en', 'transactional', true, '[]'::jsonb, now(), now()) RETURNING id"
    )[0][0]
    db.execute("INSERT INTO texts_textmessage_segments (textmessage_id, segment_id) VALUES (%s, %s)", (text, segment))
    db.execute("ANALYZE")
    log(f"seeded {contacts:,} contacts, segment {segment}, text message {text} in {time.monotonic() - started:.1f}s")
    return int(segment), int(text)


# Faults and recovery


@dataclass
class FaultRecord:
    name: str
    started: float
    ended: float
    pre_rate: float
    recovered_after: float | None = None
    how: str = ""


def wait_recovery(sampler: Sampler, fault: FaultRecord, *, timeout: float) -> None:
    """Seconds from the fault's end until the rate over WINDOW is >= half the pre-fault rate, or nothing is
    pending."""
    deadline = time.monotonic() + timeout
    target = fault.pre_rate / 2
    while time.monotonic() < deadline:
        now, _, pending = sampler.latest()
        if pending == 0:
            fault.recovered_after, fault.how = max(0.0, now - fault.ended), "queue drained"
            break
        if now - fault.ended >= WINDOW and sampler.rate(now - WINDOW, now) >= target:
            fault.recovered_after, fault.how = now - fault.ended, f">= {target:.0f}/s"
            break
        time.sleep(0.5)
    else:
        fault.how = f"not recovered within {timeout:.0f}s"
    shown = "-" if fault.recovered_after is None else f"{fault.recovered_after:.1f}s"
    log(f"{fault.name}: lasted {fault.ended - fault.started:.1f}s, pre-fault {fault.pre_rate:.0f}/s, recovery {shown}")


def pre_rate(sampler: Sampler) -> float:
    now = time.monotonic()
    return sampler.rate(now - 10, now)


def steady_rate(sampler: Sampler, *, window: float = 10.0, timeout: float = 90.0) -> tuple[float, list[float]]:
    """The send rate once it has settled after the fan-out: the first 10 s window within 15% of the one before it
    (bounded). Taken 12 s after the fan-out, the rate was sometimes still a fraction of what the send then did for
    half an hour (15/s against ~110/s), and "recovered to half the pre-fault rate" meant little."""
    deadline = time.monotonic() + timeout
    rates: list[float] = []
    while True:
        time.sleep(window)
        now = time.monotonic()
        rates.append(sampler.rate(now - window, now))
        if len(rates) >= 2 and rates[-1] > 0 and abs(rates[-1] - rates[-2]) <= 0.15 * max(rates[-1], rates[-2]):
            return rates[-1], rates
        if now >= deadline:
            return max(rates), rates


def fault_postgres(stack: Any, sampler: Sampler) -> FaultRecord:
    rate, start = pre_rate(sampler), time.monotonic()
    log("fault: restarting PostgreSQL")
    took = stack.restart_postgres()
    log(f"PostgreSQL back after {took:.1f}s")
    return FaultRecord("PostgreSQL restart", start, time.monotonic(), rate)


def fault_twilio_down(stack: Any, sampler: Sampler, seconds: float) -> FaultRecord:
    rate, start = pre_rate(sampler), time.monotonic()
    log(f"fault: fake_twilio refuses connections for {seconds:.0f}s")
    stack.twilio.control(down_seconds=seconds, down_mode="refuse")
    time.sleep(seconds)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # listening again
        try:
            stack.twilio.control()
            break
        except OSError:
            time.sleep(0.2)
    return FaultRecord(f"fake_twilio down {seconds:.0f}s", start, time.monotonic(), rate)


def fault_kill_workers(stack: Any, sampler: Sampler, kills: int, every: float) -> FaultRecord:
    rate, start = pre_rate(sampler), time.monotonic()
    for k in range(kills):
        in_flight = stack.twilio.stats()["in_flight"]
        victim = stack.kill_worker(k)
        log(f"fault: SIGKILL {victim.name} ({k + 1}/{kills}) with {in_flight} requests in flight at fake_twilio")
        stack.start_worker(kind=getattr(victim, "kind", ""))
        time.sleep(every)
    return FaultRecord(f"SIGKILL a worker every {every:.0f}s, x{kills}", start, time.monotonic(), rate)


def fault_redis(stack: Any, sampler: Sampler, replies: Replies, seconds: float) -> FaultRecord:
    rate, start = pre_rate(sampler), time.monotonic()
    log(f"fault: Redis stopped for {seconds:.0f}s (its queues are lost with it)")
    stack.stop_redis()
    replies.phase = "redis down"
    time.sleep(seconds)
    replies.phase = "normal"
    stack.start_redis()
    log("Redis started again (empty)")
    return FaultRecord(f"Redis down {seconds:.0f}s", start, time.monotonic(), rate)


def revive(stack: Any, died: list[str]) -> None:
    """Start a new worker for each one that exited on its own, as the process supervisor would (docker-compose's
    ``restart: unless-stopped``): kombu's Redis transport can crash a worker when the broker vanishes (an
    AttributeError in ``restore_unacked`` on the closed connection), which is the supervisor's to handle."""
    for worker in list(stack.workers):
        if not worker.alive:
            stack.workers.remove(worker)
            died.append(worker.name)
            log(f"{worker.name} exited by itself ({worker.popen.returncode}): starting a new one")
            stack.start_worker(kind=getattr(worker, "kind", ""))


def settle_callbacks(stack: Any, *, timeout: float) -> tuple[list[dict[str, Any]], float, int]:
    """fake_twilio's status callbacks once it has posted all it scheduled (bounded): the list, the seconds that took,
    and how many were still to post at the bound (0: all posted). It asks for two counts each second rather than
    fetching the whole list (hundreds of thousands of records, serialised by fake_twilio under its lock) each time."""
    started = time.monotonic()
    deadline = started + timeout
    while (waiting := stack.twilio.stats()["callbacks_waiting"]) and time.monotonic() < deadline:
        time.sleep(1)
    return stack.twilio.status_callbacks_sent(), time.monotonic() - started, waiting


def sweep_by_hand(stack: Any) -> str:
    code = (
        "from texts.services import outbound_sweep as s; r = s(); "
        "print(len(r.requeued), len(r.unknown), len(r.reenqueued))"
    )
    proc = stack.manage("shell", "-c", code, timeout=120)
    return (proc.stdout.strip() or proc.stderr.strip()[-300:]).replace("\n", " ")


def drain(stack: Any, sampler: Sampler, deadline: float, died: list[str]) -> tuple[bool, int]:
    """Wait until nothing is queued or sending (bounded). Beat runs the sweeper every minute; if nothing moves for
    three minutes, sweep by hand once (and say so: beat should have)."""
    manual = 0
    last_change, last_seen = time.monotonic(), None
    while time.monotonic() < deadline:
        _, done, pending = sampler.latest()
        if pending == 0:
            return True, manual
        revive(stack, died)
        if (done, pending) != last_seen:
            last_seen, last_change = (done, pending), time.monotonic()
        elif time.monotonic() - last_change > 180:
            manual += 1
            log(f"nothing moved for 180s ({pending} pending): sweeping by hand: {sweep_by_hand(stack)}")
            last_change = time.monotonic()
        time.sleep(2)
    return False, manual


# Report


def figure(
    name: str, value: Any, unit: str, target: str, ok: bool | None, baseline: str = "none", base: Any = None
) -> dict[str, Any]:
    ratio = (
        round(value / base, 2) if isinstance(base, (int, float)) and base and isinstance(value, (int, float)) else None
    )
    return {
        "figure": name,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "baseline_value": base,
        "ratio": ratio,
        "target": target,
        "ok": ok,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10,000 contacts")
    parser.add_argument("--workers", type=int, default=2, help="bulk sender workers (docker-compose.yml's `sender`)")
    parser.add_argument("--deadline", type=float, help="seconds for the whole send (default 600 + contacts/40)")
    args = parser.parse_args()
    contacts = 10_000 if args.quick else args.contacts
    if not os.environ.get("SMSAPP_PG_DATA"):
        raise SystemExit("needs the servers: python -m smsapp.testing.services -- python bench/faults.py")
    import django

    django.setup()
    from smsapp.testing.stack import Stack

    extra_env = {
        # A killed worker's unacked task comes back after a minute, not an hour; a row a dead worker left in
        # `sending` is swept after 30 s (both defaults are sized for production, not for a bench).
        "CELERY_VISIBILITY_TIMEOUT": "60",
        "SMS_SENDING_STALE_SECONDS": "30",
        # 429s are retried with backoff: a shorter base keeps the bench's tail short (the logic is the same).
        "SMS_RETRY_BASE_SECONDS": "2",
        "SMS_RETRY_MAX_SECONDS": "30",
        # One cron-like run is what we measure; beat's own broadcast run every minute stays on (it must be harmless).
        "BROADCASTS_INTERVAL_SECONDS": "60",
    }
    figures: list[dict[str, Any]] = []
    started_all = time.monotonic()
    with Stack(
        workers=args.workers,
        twilio_from=",".join(SENDERS),
        extra_env=extra_env,
        name="faults",
        deployment="compose",
    ) as stack:
        log(
            f"stack up: docker-compose.yml's workers ({args.workers} bulk senders), beat, gunicorn, fake_twilio; "
            f"logs in {stack.log_dir}"
        )
        db = Db(stack.database_url)
        segment_id, text_id = seed(db, contacts)
        numbers = [f"+1646{2000000 + i}" for i in range(1, min(contacts, 500) + 1)]
        stack.twilio.control(fail_429_rate=0.2, callback_delay_ms=5)
        sampler = Sampler(Db(stack.database_url), text_id)
        sampler.start()
        replies = Replies(stack, numbers)
        replies.start()
        deadline = time.monotonic() + (args.deadline or 600 + contacts / 40)

        fan_started = time.monotonic()
        run = stack.manage("send_broadcasts", "--id", str(text_id), timeout=600)
        log(f"send_broadcasts ({time.monotonic() - fan_started:.1f}s, exit {run.returncode}): {run.stdout.strip()}")
        if run.returncode:
            log(run.stderr[-2000:])
        baseline_rate, windows = steady_rate(sampler)
        log(
            f"steady rate before any fault (429s on a fifth of requests): {baseline_rate:.0f}/s "
            f"(10 s windows after the fan-out: {', '.join(f'{r:.0f}' for r in windows)})"
        )

        died: list[str] = []
        faults = [fault_postgres(stack, sampler)]
        # Faults follow each other closely: each one's "pre-fault rate" is the steady rate before the first fault.
        reference = baseline_rate
        faults[-1].pre_rate = reference
        wait_recovery(sampler, faults[-1], timeout=180)
        faults.append(fault_twilio_down(stack, sampler, 10))
        faults[-1].pre_rate = reference
        wait_recovery(sampler, faults[-1], timeout=180)
        faults.append(fault_kill_workers(stack, sampler, kills=4, every=3))
        faults[-1].pre_rate = reference
        wait_recovery(sampler, faults[-1], timeout=180)
        faults.append(fault_redis(stack, sampler, replies, 30))
        time.sleep(3)  # a worker that crashes on the broker's return does so within a second or two
        revive(stack, died)
        faults[-1].pre_rate = reference
        wait_recovery(sampler, faults[-1], timeout=240)

        drained, manual_sweeps = drain(stack, sampler, deadline, died)
        send_seconds = time.monotonic() - fan_started
        log(f"{'drained' if drained else 'DEADLINE reached'} after {send_seconds:.0f}s")
        replies.stop()
        sampler.stop()
        # fake_twilio's callback threads may still be behind (on these shared cores they post fewer callbacks a
        # second than the send makes): a late callback can still turn an `unknown` into a known outcome, so count
        # once they have all been posted (bounded).
        callbacks, tail_seconds, never_posted = settle_callbacks(stack, timeout=900)
        log(f"status callbacks all posted {tail_seconds:.0f}s after the send drained ({never_posted} not at the bound)")
        # Callbacks the app could not take (a 5xx while PostgreSQL restarted) are not retried by Twilio: those
        # messages are still `sent`. Reconciliation asks fake_twilio for them, and looks for the `unknown` ones
        # without a SID, as beat would once they are SMS_RECONCILE_AFTER_SECONDS old (here: at once).
        before_reconcile = dict(
            db.query(
                "SELECT status, count(*) FROM texts_outboundmessage WHERE text_message_id = %s GROUP BY 1", (text_id,)
            )
        )
        log(f"rows by status once the callbacks settled: {before_reconcile}")
        reconcile_runs = []
        for _ in range(5):  # a run stops early when fake_twilio keeps refusing (its 429s): run again, bounded
            # Statuses and unknown messages only: the prices of 100,000 messages are beat's to fetch, 500 a run.
            done = stack.manage(
                "reconcile_statuses", "--after", "0", "--limit", str(contacts), "--no-prices", timeout=900
            )
            reconcile_runs.append(done.stdout.strip() or done.stderr.strip()[-300:])
            log(f"reconcile_statuses (exit {done.returncode}): {reconcile_runs[-1]}")
            if done.returncode == 0 and "skipped, another run is at it" in done.stdout:
                time.sleep(10)  # beat's own run holds the lock: ours asks again once it is done
                continue
            if done.returncode == 0:
                break

        # What happened
        by_status = dict(
            db.query(
                "SELECT status, count(*) FROM texts_outboundmessage WHERE text_message_id = %s GROUP BY 1", (text_id,)
            )
        )
        log(f"rows by status: {by_status}")
        audience = db.query("SELECT count(*) FROM contacts_segmentmembership WHERE segment_id = %s", (segment_id,))[0][
            0
        ]
        no_row = db.query(
            "SELECT count(*) FROM contacts_segmentmembership m WHERE m.segment_id = %s AND NOT EXISTS (SELECT 1 FROM "
            "texts_outboundmessage o WHERE o.contact_id = m.contact_id AND o.text_message_id = %s)",
            (segment_id, text_id),
        )[0][0]
        stuck = sum(by_status.get(s, 0) for s in PENDING)
        lost = int(no_row) + int(stuck)
        sent = sum(n for s, n in by_status.items() if s not in PENDING)
        unknown = db.query(
            "SELECT error_code, left(error_message, 90), count(*), count(provider_sid) FROM texts_outboundmessage "
            "WHERE text_message_id = %s AND status = 'unknown' GROUP BY 1, 2 ORDER BY 3 DESC",
            (text_id,),
        )
        never_sent = db.query(
            "SELECT count(*) FROM texts_outboundmessage WHERE text_message_id = %s AND status = 'unknown' "
            "AND error_message LIKE %s",
            (text_id, "%The provider sent no message with this text%"),
        )[0][0]
        failed = db.query(
            "SELECT error_code, left(error_message, 60), count(*) FROM texts_outboundmessage "
            "WHERE text_message_id = %s AND status = 'failed' GROUP BY 1, 2 ORDER BY 3 DESC",
            (text_id,),
        )
        accepted = stack.twilio.messages()
        counts = Counter((m["to"], m["body"]) for m in accepted)
        duplicates = sum(n - 1 for n in counts.values() if n > 1)
        at_twilio = set(counts)
        # Rows Twilio accepted that the log does not say reached it (unknown ones are expected here: that is why).
        not_sent_rows = db.query(
            "SELECT status, to_number, body FROM texts_outboundmessage WHERE text_message_id = %s "
            "AND status NOT IN ('sent', 'delivered', 'undelivered')",
            (text_id,),
        )
        unknown_reached = sum(1 for s, to, body in not_sent_rows if s == "unknown" and (to, body) in at_twilio)
        failed_reached = sum(1 for s, to, body in not_sent_rows if s == "failed" and (to, body) in at_twilio)
        sids = [r["sid"] for r in replies.sent]
        stored = {
            r[0] for r in db.query("SELECT message_sid FROM texts_inboundmessage WHERE message_sid = ANY(%s)", (sids,))
        }
        answered = Counter(str(r["status"]) for r in replies.sent)
        down_replies = [r for r in replies.sent if r["phase"] == "redis down"]
        down_stored = sum(1 for r in down_replies if r["sid"] in stored)
        leaked = stack.leaked_secrets()

        log(f"audience {audience:,}; rows past sending {sent:,}; accepted at fake_twilio {len(accepted):,}")
        log(f"duplicates at fake_twilio (same To and Body twice): {duplicates}")
        log(f"lost: {no_row} audience contacts with no row, {stuck} rows still queued/sending")
        log(
            f"unknown: {sum(r[2] for r in unknown)} (reached fake_twilio: {unknown_reached}; found never sent by "
            f"reconciliation: {never_sent})"
        )
        for code, message, n, with_sid in unknown:
            log(f"  unknown {code or '-'} x{n} ({with_sid} with a SID): {message}")
        log(f"failed: {sum(r[2] for r in failed)} (reached fake_twilio: {failed_reached})")
        for code, message, n in failed:
            log(f"  failed {code or '-'} x{n}: {message}")
        log(
            f"replies: {len(sids)} posted by fake_twilio (answers {dict(answered)}), {len(stored)} stored; "
            f"while Redis was down: {len(down_replies)} posted, {down_stored} stored; fake_twilio unreachable "
            f"for {replies.unreachable} attempts (nothing posted)"
        )
        answers = Counter(str(c["status"]) for c in callbacks)
        log(
            f"status callbacks posted by fake_twilio: {len(callbacks):,}, answered {dict(answers)} (a 5xx is the "
            "app telling Twilio it could not take it, e.g. while PostgreSQL restarted)"
        )
        log(
            f"manual sweeps: {manual_sweeps}; workers that exited by themselves: {died or 'none'}; "
            f"secrets in logs: {leaked or 'none'}"
        )
        overall = sent / send_seconds if send_seconds else 0.0
        log(f"overall {overall:.0f} msg/s over {send_seconds:.0f}s, steady pre-fault {baseline_rate:.0f}/s")
        db.close()

    figures += [
        figure(
            f"messages sent (rows past sending), {contacts:,} contacts",
            sent,
            "msgs",
            f"= {audience:,}",
            sent == audience,
        ),
        figure("duplicates at fake_twilio", duplicates, "msgs", "0", duplicates == 0),
        figure("lost (no row, or queued/sending at the deadline)", lost, "msgs", "0", lost == 0),
        figure(
            "unknown (" + ", ".join(f"{c or '-'} x{n}" for c, _, n, _ in unknown) + ")" if unknown else "unknown",
            sum(r[2] for r in unknown),
            "msgs",
            "reported",
            None,
        ),
        figure(
            "unknown that reconciliation found fake_twilio never sent",
            int(never_sent),
            "msgs",
            "= unknown, none at fake_twilio",
            int(never_sent) == sum(r[2] for r in unknown) and unknown_reached == 0,
        ),
        figure(
            "left `sent` when the status callbacks settled (callbacks lost)",
            before_reconcile.get("sent", 0),
            "msgs",
            "reported",
            None,
        ),
        figure(
            "left `sent` after reconcile_statuses",
            by_status.get("sent", 0),
            "msgs",
            "0 (fake_twilio reports every message)",
            by_status.get("sent", 0) == 0,
        ),
        figure(
            "failed (" + ", ".join(f"{c or '-'} x{n}" for c, _, n in failed) + ")" if failed else "failed",
            sum(r[2] for r in failed),
            "msgs",
            "reported",
            None,
        ),
        figure(
            "replies stored / posted", len(stored), "replies", f"= {len(sids)}", len(stored) == len(sids) and bool(sids)
        ),
        figure(
            "replies stored while Redis was down",
            down_stored,
            "replies",
            f"= {len(down_replies)}",
            down_stored == len(down_replies) and bool(down_replies),
        ),
        figure(
            "status callbacks not answered 200",
            sum(n for code, n in answers.items() if code != "200"),
            "callbacks",
            "reported",
            None,
        ),
        figure(
            "status callbacks still being posted after the send drained (fake_twilio on the same 2 cores)",
            round(tail_seconds, 1),
            "s",
            "informative: 0 not posted at the 900 s bound",
            never_posted == 0,
        ),
        figure(
            "workers that exited by themselves (restarted as a supervisor would)",
            len(died),
            "workers",
            "reported",
            None,
        ),
        figure(
            "overall send rate through all faults",
            round(overall, 1),
            "msg/s",
            "informative",
            None,
            "steady rate before the faults",
            round(baseline_rate, 1),
        ),
    ]
    for fault in faults:
        figures.append(
            figure(
                f"recovery after {fault.name} ({fault.how})",
                None if fault.recovered_after is None else round(fault.recovered_after, 1),
                "s",
                "rate back to half the pre-fault rate",
                fault.recovered_after is not None,
                "pre-fault rate (msg/s)",
                round(fault.pre_rate, 1),
            )
        )
        figures[-1]["ratio"] = None
    log(f"total {time.monotonic() - started_all:.0f}s")
    print("RESULT " + json.dumps({"bench": "faults", "figures": figures}), flush=True)
    return 0 if drained and not duplicates and not lost and not leaked else 1


if __name__ == "__main__":
    sys.exit(main())
