"""Dispatch benchmark: queued rows to fake_twilio through real Celery workers, beside a bare loop of sends with the
same twilio client to the same server, in the same run; and a check that every per-sender rate limit held.

    python -m smsapp.testing.services -- python bench/dispatch.py --messages 2000

Target (DESIGN.md): the workers reach at least half the bare loop's rate. The last line is ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsapp.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("SMSAPP_IGNORE_DOTENV", "1")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("SMSAPP_VAR_DIR", tempfile.mkdtemp(prefix="smsapp-bench-dispatch-"))

SENDERS = ("+1234567", "+1234568", "+1234569")  # short codes: 100 messages per second each by Twilio's defaults
RATE_PER_SENDER = 100.0
ACCOUNT_SID = "AC" + "be0c" * 8
AUTH_TOKEN = "be0c70ce" * 4  # the local fake server's, not a secret


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The most events in any interval [t, t + window)."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--baseline", type=int, default=0, help="sends in the bare loop (default: a third of messages)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get("REDIS_URL"):
        print("dispatch: run under `python -m smsapp.testing.services --` (PostgreSQL and Redis)", file=sys.stderr)

    from smsapp.testing.services import free_port

    fake_port = free_port()
    os.environ.update(
        SMS_PROVIDER="twilio",
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_API_BASE_URL=f"http://127.0.0.1:{fake_port}",
        TWILIO_FROM=",".join(SENDERS),
        PUBLIC_BASE_URL=f"http://127.0.0.1:{free_port()}",  # status callbacks: nobody listens, not measured here
    )

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from contacts.models import Contact
    from providers.base import SendRequest
    from providers.config import get_config
    from providers.fake_twilio import FakeTwilioClient
    from providers.registry import get_provider
    from smsapp.testing import procs
    from texts import services
    from texts.models import OutboundMessage, Status, TextMessage

    fake_proc = procs.Proc(
        "fake_twilio",
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "fake_twilio",
            "--port",
            str(fake_port),
            "--account-sid",
            ACCOUNT_SID,
            "--auth-token",
            AUTH_TOKEN,
        ],
        procs.child_env(DEBUG="true"),
    )
    workers: list[Any] = []
    try:
        fake_proc.wait_for_output("fake_twilio listening on", timeout=60)
        fake = FakeTwilioClient(f"http://127.0.0.1:{fake_port}", account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
        n = args.messages
        Contact.objects.bulk_create(
            (
                Contact(
                    mobile=f"+1212{200 + i // 10000:03d}{i % 10000:04d}",
                    country="US",
                    timezone="America/New_York",
                    custom_fields={"token": f"D{i:07d}"},
                )
                for i in range(n)
            ),
            batch_size=5000,
        )
        text = TextMessage.objects.create(name="Bench", body="Bench {{custom.token}}", category="transactional")

        # Baseline: one process, the same provider (the official twilio client), the same server, a bare loop.
        base_n = args.baseline or max(200, n // 3)
        provider = get_provider()
        sender = get_config().senders[0].sender
        started = time.perf_counter()
        for i in range(base_n):
            provider.send(SendRequest(to=f"+1646200{i % 10000:04d}", body=f"Baseline {i}", sender=sender))
        baseline_rate = base_n / (time.perf_counter() - started)
        print(f"baseline: {base_n} sends in a bare loop: {baseline_rate:.1f}/s", flush=True)
        fake.reset()

        env = procs.child_env()
        workers = [
            procs.start_worker(name=f"bench{i}", concurrency=args.concurrency, env=env) for i in range(args.workers)
        ]
        started = time.perf_counter()
        services.outbound_enqueue(text_message=text, contacts=Contact.objects.all(), source="broadcast")
        deadline = time.monotonic() + max(120.0, n / 20)
        while OutboundMessage.objects.filter(status__in=[Status.QUEUED, Status.SENDING]).exists():
            if time.monotonic() > deadline:
                raise TimeoutError("dispatch did not finish")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        sent = OutboundMessage.objects.filter(status=Status.SENT).count()
        rate = sent / elapsed
        print(
            f"workers: {sent}/{n} sent by {args.workers}x{args.concurrency} workers in {elapsed:.2f}s: {rate:.1f}/s",
            flush=True,
        )

        per_sender: dict[str, list[float]] = defaultdict(list)
        for message in fake.messages():
            per_sender[message["from"]].append(float(message["received_at"]))
        peaks = {s: max_in_window(t) for s, t in per_sender.items()}
        # GCRA without burst: at most rate events in any one-second window, +1 for the event on the boundary.
        limit_ok = all(peak <= RATE_PER_SENDER + 1 for peak in peaks.values())
        print(f"rate limits: peak per sender per second {peaks} (limit {RATE_PER_SENDER:g})", flush=True)
        ratio = rate / baseline_rate if baseline_rate else 0.0
        result = {
            "bench": "dispatch",
            "figures": [
                {
                    "figure": f"dispatch through {args.workers}x{args.concurrency} Celery workers",
                    "value": round(rate, 1),
                    "unit": "msg/s",
                    "baseline": "bare loop of sends, same twilio client and server",
                    "baseline_value": round(baseline_rate, 1),
                    "ratio": round(ratio, 2),
                    "target": ">= 0.5",
                    "ok": ratio >= 0.5 and sent == n,
                },
                {
                    "figure": "peak messages per second per sender",
                    "value": max(peaks.values() or [0]),
                    "unit": "msg/s",
                    "baseline": "configured rate per sender",
                    "baseline_value": RATE_PER_SENDER,
                    "ratio": round(max(peaks.values() or [0]) / RATE_PER_SENDER, 2),
                    "target": "<= rate (+1 at a window edge)",
                    "ok": limit_ok,
                },
            ],
        }
    finally:
        for worker in workers:
            worker.stop()
        fake_proc.stop()
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
