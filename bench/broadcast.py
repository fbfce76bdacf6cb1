"""Broadcast benchmark: the set-based fan-out beside a bare INSERT … SELECT of the same rows, its peak memory, and a
slice end-to-end through real Celery workers to fake_twilio.

    python -m smsapp.testing.services -- python bench/broadcast.py [--contacts 100000] [--e2e 5000]

For each size (default 100,000 and 1,000,000): N contacts are generated in SQL (5% Do Not Contact, 1% without a
number) in two overlapping segments, and 2% have the broadcast already. ``send_broadcasts`` fans out in a child
process (its peak RSS is the process's ru_maxrss); the baseline is one bare ``INSERT … SELECT`` of exactly the same
rows on the same database, from the same starting table. The last line is ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsapp.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("SMSAPP_IGNORE_DOTENV", "1")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("SMSAPP_VAR_DIR", tempfile.mkdtemp(prefix="smsapp-bench-broadcast-"))

SENDERS = tuple(f"+12345{i:02d}" for i in range(10))  # short codes, 100 msg/s each: the limiter is not the bottleneck
ACCOUNT_SID = "AC" + "b0ad" * 8
AUTH_TOKEN = "b0adca57" * 4  # the local fake server's, not a secret
BATCH = 5000

BARE = """
INSERT INTO texts_outboundmessage (contact_id, to_number, sender, sender_kind, text_message_id, source, source_ref,
    priority, body, encoding, status, error_code, error_message, attempts, next_attempt_at, price_unit,
    queued_at, updated_at)
SELECT c.id, c.mobile, '', '', %s, 'broadcast', '', false, '', '', 'queued', '', '', 0, now(), '', now(), now()
FROM contacts_contact c
WHERE EXISTS (SELECT 1 FROM contacts_segmentmembership m
              WHERE m.contact_id = c.id AND m.segment_id IN (%s, %s) AND NOT m.manually_removed)
  AND c.mobile IS NOT NULL AND c.mobile <> ''
  AND NOT EXISTS (SELECT 1 FROM contacts_donotcontact d
                  WHERE d.contact_id = c.id AND d.channel = 'sms' AND d.lifted_at IS NULL)
  AND NOT EXISTS (SELECT 1 FROM texts_outboundmessage o
                  WHERE o.text_message_id = %s AND o.contact_id = c.id AND o.source = 'broadcast')
  {consent}
ON CONFLICT DO NOTHING
"""
# With --marketing: the consent the fan-out then needs, so that the bare statement selects the same rows.
CONSENT = """AND EXISTS (SELECT 1 FROM contacts_consent k
              WHERE k.channel = 'sms' AND k.address = c.mobile AND k.status = 'subscribed')"""
MARKETING = False  # --marketing: the broadcast is marketing, 1 contact in 11 has no consent


def sql(statement: str, params: list[object] | None = None) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


def seed(contacts: int) -> tuple[list[int], int, int]:
    """Contacts, DNC, two overlapping segments; returns (segment ids, our text id, the baseline's text id)."""
    from contacts.models import Segment
    from texts.models import TextMessage

    started = time.monotonic()
    sql(
        "TRUNCATE contacts_contact, contacts_suppression, contacts_consent, texts_outboundmessage, texts_textmessage "
        "RESTART IDENTITY CASCADE"
    )
    sql(
        """
        INSERT INTO contacts_contact (first_name, last_name, email, mobile, country, timezone, preferred_language,
                                      custom_fields, created_at, updated_at)
        SELECT 'P' || i, 'L', '', CASE WHEN i %% 100 = 7 THEN NULL ELSE '+1646' || (2000000 + i)::text END,
               'US', 'America/New_York', 'en', '{}'::jsonb, now(), now()
        FROM generate_series(1, %s) AS i
        """,
        [contacts],
    )
    sql(
        """
        INSERT INTO contacts_donotcontact (contact_id, channel, reason, source, comment, created_at, lifted_at,
                                           lifted_by, lifted_comment)
        SELECT id, 'sms', 'unsubscribed', 'keyword', '', now(), NULL, '', '' FROM contacts_contact WHERE id % 20 = 0
        """
    )
    # Each opt-out is kept for the number too (issue 17), as the migration backfills it.
    sql(
        """
        INSERT INTO contacts_suppression (channel, address, reason, source, comment, created_at, lifted_by,
                                          lifted_comment)
        SELECT 'sms', c.mobile, 'unsubscribed', 'keyword', '', now(), '', '' FROM contacts_contact c
        WHERE c.id % 20 = 0 AND c.mobile IS NOT NULL
        """
    )
    if MARKETING:
        sql(
            """
            INSERT INTO contacts_consent (channel, address, status, at, source, updated_at)
            SELECT 'sms', mobile, 'subscribed', now(), 'import', now() FROM contacts_contact
            WHERE id % 11 <> 5 AND mobile IS NOT NULL
            """
        )
    a = Segment.objects.create(name="Everyone but a tenth")
    b = Segment.objects.create(name="Every third")
    sql(
        "INSERT INTO contacts_segmentmembership (segment_id, contact_id, manually_added, manually_removed, added_at) "
        "SELECT %s, id, true, false, now() FROM contacts_contact WHERE id %% 10 <> 3",
        [a.pk],
    )
    sql(
        "INSERT INTO contacts_segmentmembership (segment_id, contact_id, manually_added, manually_removed, added_at) "
        "SELECT %s, id, true, false, now() FROM contacts_contact WHERE id %% 3 = 0",
        [b.pk],
    )
    category = "marketing" if MARKETING else "transactional"
    ours = TextMessage.objects.create(name="Bench broadcast", body="Hi {{first_name}}", category=category)
    bare = TextMessage.objects.create(name="Bench baseline", body="Hi", category="transactional", is_published=False)
    ours.segments.set([a, b])
    bare.segments.set([a, b])
    sql("ANALYZE")
    print(f"seeded {contacts:,} contacts in {time.monotonic() - started:.1f}s", flush=True)
    return [a.pk, b.pk], ours.pk, bare.pk


def reset_outbound(text_ids: list[int]) -> None:
    """Back to the starting table: only the 2% of contacts who had each broadcast already."""
    sql("TRUNCATE texts_outboundmessage RESTART IDENTITY CASCADE")
    for text_id in text_ids:
        sql(
            "INSERT INTO texts_outboundmessage (contact_id, to_number, sender, sender_kind, text_message_id, source, "
            "source_ref, priority, body, encoding, status, error_code, error_message, attempts, price_unit, "
            "queued_at, updated_at) SELECT id, mobile, '', '', %s, 'broadcast', '', false, '', '', 'sent', '', '', "
            "1, '', now(), now() FROM contacts_contact WHERE id %% 50 = 1 AND mobile IS NOT NULL",
            [text_id],
        )
    sql("VACUUM ANALYZE texts_outboundmessage")


def purge_bulk_queue() -> None:
    from smsapp.celery import app

    app.control.purge()


def fan_out_child(text_id: int) -> tuple[float, int, float]:
    """``send_broadcasts`` in a child process: (seconds inside the fan-out, rows queued, peak RSS MiB)."""
    code = (
        f"import sys, time, json; sys.path.insert(0, {str(ROOT)!r}); import django; django.setup();"
        "from texts.services.broadcasts import broadcast_send; from texts.models import TextMessage;"
        f"t = TextMessage.objects.get(pk={text_id:d}); s = time.perf_counter();"
        f"r = broadcast_send(text_message=t, batch={BATCH:d});"
        "print(json.dumps({'seconds': time.perf_counter() - s, 'queued': r.queued, 'summary': r.summary()}))"
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode:
        raise SystemExit(f"fan-out failed:\n{proc.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"  {out['summary']}", flush=True)
    return float(out["seconds"]), int(out["queued"]), max(peak, before) / 1024


def bench_size(contacts: int) -> list[dict[str, Any]]:
    print(f"== {contacts:,} contacts", flush=True)
    segments, ours, bare = seed(contacts)
    reset_outbound([ours, bare])
    seconds, queued, peak = fan_out_child(ours)
    purge_bulk_queue()
    print(f"fan-out: {queued:,} rows in {seconds:.2f}s (batch {BATCH}); peak RSS {peak:.0f} MiB", flush=True)
    reset_outbound([ours, bare])
    started = time.perf_counter()
    rows = sql(BARE.format(consent=CONSENT if MARKETING else ""), [bare, *segments, bare])
    bare_seconds = time.perf_counter() - started
    print(f"bare INSERT … SELECT: {rows:,} rows in {bare_seconds:.2f}s", flush=True)
    assert rows == queued, (rows, queued)
    ratio = seconds / bare_seconds
    return [
        {
            "figure": f"broadcast fan-out, {contacts:,} contacts ({queued:,} rows)",
            "value": round(seconds, 3),
            "unit": "s",
            "baseline": "bare INSERT … SELECT of the same rows",
            "baseline_value": round(bare_seconds, 3),
            "ratio": round(ratio, 2),
            "target": "<= 2x baseline",
            "ok": ratio <= 2,
        },
        {
            "figure": f"fan-out process peak memory, {contacts:,} contacts",
            "value": round(peak),
            "unit": "MiB",
            "baseline": "none",
            "baseline_value": None,
            "ratio": None,
            "target": "< 300 MiB",
            "ok": peak < 300,
        },
    ]


def bench_e2e(n: int) -> dict[str, Any]:
    """``send_broadcasts`` to a slice of n contacts, through two real workers to fake_twilio: messages per second."""
    from django.db.models import Count

    from contacts.models import Segment
    from providers.base import SendRequest
    from providers.registry import get_provider
    from providers.twilio.config import get_config
    from providers.twilio.fake_twilio import FakeTwilio
    from smsapp.testing import procs
    from texts.models import OutboundMessage, Status, TextMessage

    print(f"== end-to-end, {n:,} contacts", flush=True)
    fake = FakeTwilio(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, port=int(os.environ["BENCH_FAKE_PORT"])).start()
    workers: list[Any] = []
    try:
        sql("TRUNCATE texts_outboundmessage RESTART IDENTITY CASCADE")
        slice_segment = Segment.objects.create(name="E2E slice")
        sql(
            "INSERT INTO contacts_segmentmembership (segment_id, contact_id, manually_added, manually_removed, "
            "added_at) SELECT %s, id, true, false, now() FROM contacts_contact WHERE mobile IS NOT NULL AND NOT "
            "EXISTS (SELECT 1 FROM contacts_donotcontact d WHERE d.contact_id = contacts_contact.id) "
            "ORDER BY id LIMIT %s",
            [slice_segment.pk, n],
        )
        TextMessage.objects.update(is_published=False)
        text = TextMessage.objects.create(name="E2E", body="Hello {{first_name}}", category="transactional")
        text.segments.set([slice_segment])

        base_n = max(200, n // 5)
        provider, sender = get_provider(), get_config().senders[0].sender
        started = time.perf_counter()
        for i in range(base_n):
            provider.send(SendRequest(to=f"+1646900{i % 10000:04d}", body=f"Baseline {i}", sender=sender))
        baseline = base_n / (time.perf_counter() - started)
        print(f"bare loop of sends, same client and server: {baseline:.1f}/s", flush=True)
        fake.reset()

        env = procs.child_env()
        workers = [procs.start_worker(name=f"bench{i}", queues="sms_bulk", concurrency=2, env=env) for i in range(2)]
        started = time.perf_counter()
        run = procs.manage("send_broadcasts", "--id", str(text.pk), "--batch", "200", env=env)
        if run.returncode:
            raise SystemExit(f"send_broadcasts failed:\n{run.stderr[-3000:]}")
        deadline = time.monotonic() + max(120.0, n / 10)
        while OutboundMessage.objects.filter(status__in=[Status.QUEUED, Status.SENDING]).exists():
            if time.monotonic() > deadline:
                raise TimeoutError("end-to-end did not finish")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        sent = OutboundMessage.objects.filter(text_message=text, status=Status.SENT).count()
        outcomes = OutboundMessage.objects.values_list("status", "error_code").annotate(n=Count("id"))
        print(f"outcomes: {sorted(outcomes)}", flush=True)
        received = len(fake.messages())
        print(f"{sent:,} sent ({received:,} received, duplicates {fake.duplicates()}) in {elapsed:.2f}s", flush=True)
        rate = sent / elapsed
        ok = sent == n == received and not fake.duplicates()
    finally:
        for worker in workers:
            worker.stop()
        fake.stop()
    return {
        "figure": f"broadcast end-to-end, {n:,} contacts, cron run + 2x2 workers to fake_twilio",
        "value": round(rate, 1),
        "unit": "msg/s",
        "baseline": "bare loop of sends, same twilio client and server",
        "baseline_value": round(baseline, 1),
        "ratio": round(rate / baseline, 2),
        "target": "informative (every recipient exactly once)",
        "ok": ok,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, action="append", help="size (repeatable); default 100000 and 1000000")
    parser.add_argument("--e2e", type=int, default=5000, help="contacts sent end-to-end (0 to skip)")
    parser.add_argument("--marketing", action="store_true", help="a marketing broadcast, gated on consent")
    args = parser.parse_args()
    global MARKETING
    MARKETING = args.marketing
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get("REDIS_URL"):
        raise SystemExit("needs PostgreSQL and Redis: python -m smsapp.testing.services -- python bench/broadcast.py")
    from smsapp.testing.services import free_port

    os.environ["BENCH_FAKE_PORT"] = str(free_port())
    os.environ.update(
        SMS_PROVIDER="twilio",
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_API_BASE_URL=f"http://127.0.0.1:{os.environ['BENCH_FAKE_PORT']}",
        TWILIO_FROM=",".join(SENDERS),
        TWILIO_MESSAGING_SERVICE_SID="",
        PUBLIC_BASE_URL=f"http://127.0.0.1:{free_port()}",  # status callbacks: nobody listens, not measured here
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    figures: list[dict[str, Any]] = []
    for size in args.contacts or [100_000, 1_000_000]:
        figures.extend(bench_size(size))
    if args.e2e:
        figures.append(bench_e2e(args.e2e))
    print("RESULT " + json.dumps({"bench": "broadcast", "figures": figures}), flush=True)


if __name__ == "__main__":
    main()
