"""Dispatch benchmark: a broadcast through the workers docker-compose.yml ships, to fake_twilio answering with a real
API's latency, beside the physical limit measured in the same run.

    python -m smsapp.testing.services -- python bench/dispatch.py --latency-ms 150
    python -m smsapp.testing.services -- python bench/dispatch.py --latency-ms 500

The server is ``fake_twilio`` (``manage.py fake_twilio --latency-ms N``, its own process): every API call waits N ms
there, as on a network 100-500 ms from Twilio. The physical limit is the lower of the senders' summed rate (three
short codes, 100 messages/s each by Twilio's defaults: 300/s) and a bare loop of the official client (the twilio
package's asynchronous client, the one the workers use) keeping 32 requests in flight to the same server. The
server's own ceiling (the same bare loop with no added latency) is printed too: it must be far above the limit, or
the benchmark would measure the server.

The workers are docker-compose.yml's worker lines (housekeeping, bulk sender, priority + pacer) and beat, started as
``docker compose up`` would start them. Reported: the rate from the first to the last message fake_twilio received,
the peak per sender in any one-second window, by the moment each request reached fake_twilio (never above its
rate, +1 at a window edge), every recipient exactly once, the most requests fake_twilio served at once, and the
peak memory of each worker process.
Target (issue 14): >= 0.8x the physical limit. The last line is ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
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
BARE_CONCURRENCY = 32
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


def bare_loop(base_url: str, n: int, concurrency: int) -> float:
    """``n`` sends with the twilio package's asynchronous client, ``concurrency`` in flight: requests per second."""
    from twilio.http.async_http_client import AsyncTwilioHttpClient
    from twilio.rest import Client

    async def main() -> float:
        http = AsyncTwilioHttpClient(timeout=30)
        client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http)
        client.api.base_url = base_url
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                await client.messages.create_async(to=f"+1646200{i % 10000:04d}", from_=SENDERS[0], body=f"Bare {i}")

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        elapsed = time.perf_counter() - started
        await http.close()
        return n / elapsed

    return asyncio.run(main())


class MemoryWatch:
    """Peak resident memory of each process in the given process groups (a prefork worker's children included)."""

    def __init__(self, pgids: dict[str, int]) -> None:
        self.pgids = pgids
        self.peak: dict[str, int] = defaultdict(int)  # "name/pid" -> bytes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid_dir in Path("/proc").iterdir():
                if not pid_dir.name.isdigit():
                    continue
                try:
                    stat = (pid_dir / "stat").read_text()
                    pgid = int(stat.rsplit(")", 1)[1].split()[2])
                    name = next((n for n, g in self.pgids.items() if g == pgid), None)
                    if name is None:
                        continue
                    rss = next(
                        int(line.split()[1]) * 1024
                        for line in (pid_dir / "status").read_text().splitlines()
                        if line.startswith("VmRSS:")
                    )
                except (OSError, StopIteration, ValueError, IndexError):
                    continue
                key = f"{name}/{pid_dir.name}"
                self.peak[key] = max(self.peak[key], rss)
            self._stop.wait(0.5)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=0, help="broadcast size (default: 90 s at the limit)")
    parser.add_argument("--latency-ms", type=float, default=150.0)
    parser.add_argument("--baseline", type=int, default=0, help="sends in the bare loop (default: ~20 s of them)")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get("REDIS_URL"):
        print("dispatch: run under `python -m smsapp.testing.services --` (PostgreSQL and Redis)", file=sys.stderr)
        return 2

    from smsapp.testing.services import free_port

    fake_port = free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    os.environ.update(
        SMS_PROVIDER="twilio",
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_API_BASE_URL=fake_url,
        TWILIO_FROM=",".join(SENDERS),
        PUBLIC_BASE_URL=f"http://127.0.0.1:{free_port()}",
        SMS_QUIET_HOURS_START="00:00",
        SMS_QUIET_HOURS_END="23:59",
    )

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from django.db import connection

    from contacts.models import Contact
    from providers.twilio.fake_twilio import FakeTwilioClient
    from providers.twilio.models import TwilioSettings
    from smsapp.testing import procs
    from smsapp.testing.deploy import compose_workers
    from texts import services
    from texts.models import OutboundMessage, Status, TextMessage

    # Status callbacks are bench/webhooks.py's subject: here the page's switch is off, so fake_twilio posts none.
    TwilioSettings.objects.update_or_create(
        id=TwilioSettings.SINGLETON_ID, defaults={"status_callbacks": False, "enabled": True}
    )

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
            "--callback-delay-ms",
            "0",
        ],
        procs.child_env(DEBUG="true"),
    )
    started_procs: list[Any] = []
    result: dict[str, Any] = {"bench": "dispatch", "figures": []}
    try:
        fake_proc.wait_for_output("fake_twilio listening on", timeout=60)
        fake = FakeTwilioClient(fake_url, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)

        # The server's own ceiling, then the bare loop at the benchmark's latency.
        ceiling = bare_loop(fake_url, 3000, BARE_CONCURRENCY)
        print(f"fake_twilio ceiling (0 ms, {BARE_CONCURRENCY} in flight, official async client): {ceiling:.0f}/s")
        fake.control(latency_ms=args.latency_ms)
        expected_bare = BARE_CONCURRENCY / (args.latency_ms / 1000) if args.latency_ms else ceiling
        base_n = args.baseline or int(min(expected_bare, ceiling) * 20)
        bare = bare_loop(fake_url, base_n, BARE_CONCURRENCY)
        summed = RATE_PER_SENDER * len(SENDERS)
        limit = min(summed, bare)
        print(
            f"bare loop at {args.latency_ms:g} ms: {bare:.1f}/s ({base_n} sends, {BARE_CONCURRENCY} in flight; "
            f"{BARE_CONCURRENCY}/latency = {expected_bare:.0f}/s); senders' summed rate {summed:.0f}/s; "
            f"physical limit {limit:.1f}/s",
            flush=True,
        )
        fake.reset()
        fake.control(latency_ms=args.latency_ms)

        n = args.messages or int(limit * 90)
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
        # Marketing goes only to subscribed numbers (SMS_MARKETING_REQUIRES_CONSENT): every recipient consented, in
        # one statement, as an import's sms_consent column records it.
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO contacts_consent (channel, address, status, at, source, updated_at) "
                "SELECT 'sms', mobile, 'subscribed', now(), 'import', now() FROM contacts_contact "
                "WHERE mobile IS NOT NULL"
            )
        # A marketing text as marketers write them, with a link: each recipient gets a tracked short link of their
        # own (issue 18), made at claim time with the rest of the chunk's rendering.
        text = TextMessage.objects.create(
            name="Bench", body="Bench {{custom.token}}: https://shop.example/spring", category="marketing"
        )

        env = procs.child_env()
        started_procs.append(procs.start_beat(env=env))
        workers = compose_workers()
        for name, argv in workers.items():
            started_procs.append(procs.Proc(name, argv, env))
        for proc in started_procs[1:]:
            proc.wait_for_output(" ready.", timeout=90)
        print(f"workers (docker-compose.yml): {', '.join(' '.join(argv[2:]) for argv in workers.values())}")
        fake.stats(reset=True)

        with MemoryWatch({p.name: p.popen.pid for p in started_procs[1:]}) as memory:
            enqueued = time.perf_counter()
            services.outbound_enqueue(text_message=text, contacts=Contact.objects.all(), source="broadcast")
            deadline = time.monotonic() + max(180.0, n / limit * 4)
            while OutboundMessage.objects.filter(status__in=[Status.QUEUED, Status.SENDING]).exists():
                if time.monotonic() > deadline:
                    raise TimeoutError("dispatch did not finish")
                time.sleep(0.2)
            end_to_end = time.perf_counter() - enqueued
        received = fake.messages()
        stamps = sorted(float(m["received_at"]) for m in received)
        rate = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
        sent = OutboundMessage.objects.filter(status=Status.SENT).count()
        peak_in_flight = fake.stats()["peak_in_flight"]
        print(
            f"broadcast: {sent}/{n} sent; {rate:.1f}/s from the first to the last message at fake_twilio; "
            f"{n / end_to_end:.1f}/s end to end (enqueue to the last outcome written, {end_to_end:.1f} s); "
            f"{peak_in_flight} requests in flight at most",
            flush=True,
        )
        per_sender: dict[str, list[float]] = defaultdict(list)
        for message in received:
            per_sender[message["from"]].append(float(message["received_at"]))
        peaks = {s: max_in_window(t) for s, t in per_sender.items()}
        limit_ok = all(peak <= RATE_PER_SENDER + 1 for peak in peaks.values())
        duplicates = fake.duplicates()
        exactly_once = sent == n and len(received) == n and not duplicates
        from texts.models import ShortLink

        linked = sum(1 for m in received if "/l/" in m["body"] and "shop.example" not in m["body"])
        links = ShortLink.objects.filter(text_message=text).count()
        print(f"tracked links: {linked} of {len(received)} messages carried a short link; {links} links made")
        exactly_once = exactly_once and linked == n == links
        print(
            f"rate limits: peak per sender per second {peaks} (limit {RATE_PER_SENDER:g}); duplicates {len(duplicates)}"
        )
        worker_peaks = {k: v for k, v in memory.peak.items() if not k.startswith("beat/")}
        biggest = max(worker_peaks.values() or [0]) / 2**20
        print(
            "worker memory (peak RSS per process): "
            + ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in sorted(worker_peaks.items()))
        )
        ratio = rate / limit if limit else 0.0
        result["figures"] = [
            {
                "figure": f"broadcast at {args.latency_ms:g} ms API latency, docker-compose workers, {n:,} messages "
                "(each with a tracked link)",
                "value": round(rate, 1),
                "unit": "msg/s",
                "baseline": f"physical limit: min(senders' {summed:.0f}/s, bare official async client, "
                f"{BARE_CONCURRENCY} in flight)",
                "baseline_value": round(limit, 1),
                "ratio": round(ratio, 2),
                "target": ">= 0.8",
                "ok": ratio >= 0.8 and exactly_once,
            },
            {
                "figure": f"fake_twilio's own ceiling (0 ms, {BARE_CONCURRENCY} in flight)",
                "value": round(ceiling, 1),
                "unit": "req/s",
                "baseline": "physical limit of this run",
                "baseline_value": round(limit, 1),
                "ratio": round(ceiling / limit, 2) if limit else None,
                "target": "well above the limit (the server is not the bottleneck)",
                "ok": ceiling >= 1.5 * limit,
            },
            {
                "figure": f"peak messages per second per sender ({args.latency_ms:g} ms)",
                "value": max(peaks.values() or [0]),
                "unit": "msg/s",
                "baseline": "configured rate per sender",
                "baseline_value": RATE_PER_SENDER,
                "ratio": round(max(peaks.values() or [0]) / RATE_PER_SENDER, 2),
                "target": "<= rate (+1 at a window edge)",
                "ok": limit_ok,
            },
            {
                "figure": f"recipients reached exactly once ({args.latency_ms:g} ms)",
                "value": len({m["to"] for m in received}),
                "unit": "contacts",
                "baseline": "broadcast size",
                "baseline_value": n,
                "ratio": None,
                "target": f"= {n}, 0 duplicates",
                "ok": exactly_once,
            },
            {
                "figure": f"worker memory, largest process ({peak_in_flight} requests in flight at most)",
                "value": round(biggest),
                "unit": "MiB",
                "baseline": "none",
                "baseline_value": None,
                "ratio": None,
                "target": "< 250 MiB per process",
                "ok": biggest < 250,
            },
        ]
    finally:
        for proc in reversed(started_procs):
            proc.stop()
        fake_proc.stop()
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
