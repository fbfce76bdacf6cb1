"""Webhook benchmark: signed Twilio status callbacks and inbound replies under gunicorn, beside a trivial Django view
served by the same gunicorn in the same run, with p50/p99 latency and a count of anything lost.

    python -m smsapp.testing.services -- python bench/webhooks.py --callbacks 4000

Target (DESIGN.md): at least half the trivial view's requests per second, nothing lost. Last line: ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.webhooks_settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("SMSAPP_IGNORE_DOTENV", "1")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("SMSAPP_VAR_DIR", tempfile.mkdtemp(prefix="smsapp-bench-webhooks-"))

ACCOUNT_SID = "AC" + "be0c" * 8
AUTH_TOKEN = "be0c70ce" * 4  # a local benchmark value, not a secret
OUR_NUMBER = "+15005550006"
PATH = "/sms/twilio/callback"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _run(url: str, jobs: list[tuple[str, dict[str, str], dict[str, str]]], concurrency: int) -> dict[str, Any]:
    """POST every job from ``concurrency`` threads (one keep-alive session each); rate, latencies, non-200s."""
    import requests

    local = threading.local()
    latencies: list[float] = []
    failures: list[int] = []
    lock = threading.Lock()

    def one(job: tuple[str, dict[str, str], dict[str, str]]) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        path, data, headers = job
        start = time.perf_counter()
        response = session.post(url + path, data=data, headers=headers, timeout=30)
        elapsed = time.perf_counter() - start
        with lock:
            latencies.append(elapsed)
            if response.status_code != 200:
                failures.append(response.status_code)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, jobs))
    wall = time.perf_counter() - started
    return {
        "rps": len(jobs) / wall,
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "non_200": len(failures),
        "codes": sorted(set(failures)),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--callbacks", type=int, default=4000, help="status callbacks (two per message)")
    parser.add_argument("--replies", type=int, default=1000, help="inbound replies, from new numbers")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        print("webhooks: run under `python -m smsapp.testing.services --` (PostgreSQL)", file=sys.stderr)

    from smsapp.testing.services import free_port

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    os.environ.update(
        SMS_PROVIDER="twilio",
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_FROM=OUR_NUMBER,
        PUBLIC_BASE_URL=base,
        ALLOWED_HOSTS="127.0.0.1",
        DEBUG="false",
    )

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from django.utils import timezone
    from twilio.request_validator import RequestValidator

    from texts.models import InboundMessage, OutboundMessage, Status

    messages = max(1, args.callbacks // 2)
    now = timezone.now()
    sids = [f"SM{secrets.token_hex(16)}" for _ in range(messages)]
    OutboundMessage.objects.bulk_create(
        (
            OutboundMessage(
                to_number=f"+1212300{i % 10000:04d}", source="api", status=Status.SENT, provider_sid=s, sent_at=now
            )
            for i, s in enumerate(sids)
        ),
        batch_size=5000,
    )
    validator = RequestValidator(AUTH_TOKEN)

    def signed(path: str, params: dict[str, str]) -> tuple[str, dict[str, str], dict[str, str]]:
        return path, params, {"X-Twilio-Signature": validator.compute_signature(base + path, params)}

    def status(sid: str, value: str) -> dict[str, str]:
        return {
            "SmsSid": sid,
            "SmsStatus": value,
            "MessageStatus": value,
            "To": "+12123000000",
            "MessageSid": sid,
            "AccountSid": ACCOUNT_SID,
            "From": OUR_NUMBER,
            "ApiVersion": "2010-04-01",
        }

    def inbound(i: int) -> dict[str, str]:
        sid = f"SM{secrets.token_hex(16)}"
        return {
            "ToCountry": "US",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "SmsSid": sid,
            "SmsStatus": "received",
            "Body": "STOP" if i % 5 == 0 else f"Reply {i}",
            "FromCountry": "US",
            "To": OUR_NUMBER,
            "NumSegments": "1",
            "MessageSid": sid,
            "AccountSid": ACCOUNT_SID,
            "From": f"+1646555{i % 10000:04d}",
            "ApiVersion": "2010-04-01",
        }

    # Each message: sent then delivered (interleaved across messages), then the replies; all signed beforehand.
    status_jobs = [signed(PATH, status(s, "sent")) for s in sids] + [signed(PATH, status(s, "delivered")) for s in sids]
    reply_jobs = [signed(PATH, inbound(i)) for i in range(args.replies)]
    webhook_jobs = status_jobs + reply_jobs
    trivial_jobs = [(p.replace(PATH, "/sms/bench-trivial"), d, h) for p, d, h in webhook_jobs]

    gunicorn = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "smsapp.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(args.workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(args.threads),
            "--log-level",
            "warning",
            "--chdir",
            str(ROOT),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        import requests

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.post(base + "/sms/bench-trivial", data={"a": "b"}, timeout=10).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.2)
        else:
            raise SystemExit("gunicorn did not start")
        _run(base, trivial_jobs[:200], args.concurrency)  # warm both workers up
        trivial = _run(base, trivial_jobs, args.concurrency)
        print(
            f"trivial view: {trivial['rps']:.0f} req/s, p50 {trivial['p50_ms']:.1f} ms, p99 {trivial['p99_ms']:.1f} ms"
        )
        hooks = _run(base, webhook_jobs, args.concurrency)
        print(
            f"webhooks:     {hooks['rps']:.0f} req/s, p50 {hooks['p50_ms']:.1f} ms, p99 {hooks['p99_ms']:.1f} ms "
            f"({len(status_jobs)} status callbacks, {len(reply_jobs)} replies; "
            f"non-200: {hooks['non_200']} {hooks['codes']})"
        )
    finally:
        gunicorn.terminate()
        try:
            gunicorn.wait(timeout=20)
        except subprocess.TimeoutExpired:
            gunicorn.kill()
            gunicorn.wait()

    delivered = OutboundMessage.objects.filter(provider_sid__in=sids, status=Status.DELIVERED).count()
    stored = InboundMessage.objects.count()
    lost = (messages - delivered) + (args.replies - stored) + hooks["non_200"]
    print(f"lost: {lost} (delivered {delivered}/{messages}, replies stored {stored}/{args.replies})")
    ratio = hooks["rps"] / trivial["rps"] if trivial["rps"] else 0.0
    figures = [
        {
            "figure": "signed webhooks per second (gunicorn)",
            "value": round(hooks["rps"], 1),
            "unit": "req/s",
            "baseline": "trivial Django view, same gunicorn",
            "baseline_value": round(trivial["rps"], 1),
            "ratio": round(ratio, 3),
            "target": ">= 0.5",
            "ok": ratio >= 0.5,
        },
        {
            "figure": "webhook p99 latency",
            "value": round(hooks["p99_ms"], 1),
            "unit": "ms",
            "baseline": "trivial view p99",
            "baseline_value": round(trivial["p99_ms"], 1),
            "ratio": round(hooks["p99_ms"] / trivial["p99_ms"], 2) if trivial["p99_ms"] else None,
            "target": "reported",
            "ok": True,
        },
        {
            "figure": "webhook p50 latency",
            "value": round(hooks["p50_ms"], 1),
            "unit": "ms",
            "baseline": "trivial view p50",
            "baseline_value": round(trivial["p50_ms"], 1),
            "ratio": round(hooks["p50_ms"] / trivial["p50_ms"], 2) if trivial["p50_ms"] else None,
            "target": "reported",
            "ok": True,
        },
        {
            "figure": "callbacks lost",
            "value": lost,
            "unit": "count",
            "baseline": "callbacks sent",
            "baseline_value": len(webhook_jobs),
            "ratio": round(lost / len(webhook_jobs), 4),
            "target": "0",
            "ok": lost == 0,
        },
    ]
    print("RESULT " + json.dumps({"bench": "webhooks", "figures": figures}), flush=True)
    return 0 if all(f["ok"] for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
