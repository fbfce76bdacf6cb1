"""Fault test: real Celery workers on PostgreSQL + Redis send 2,000 messages to fake_twilio (a separate process)
which fails some requests with 429 and 500; one worker is killed with SIGKILL mid-run and another started.

At the end every message is sent exactly once or marked unknown: none lost (nothing left queued or sending), none
duplicated at fake_twilio (its log counted by (To, Body), each body carrying a unique token).
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from typing import Any

import pytest
from django.db.models import Count

from contacts.models import Contact
from smsapp.testing import procs
from tests.real_workers import worker_env
from texts import services
from texts.models import OutboundMessage, Status, TextMessage

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

MESSAGES = 2000
# Three short codes (100 messages per second each by Twilio's defaults), so a pool is exercised and the run is short.
SENDERS = "+1234567,+1234568,+1234569"


def _env(fake: Any) -> dict[str, str]:
    return worker_env(
        fake,
        sender=SENDERS,
        SMS_RETRY_BASE_SECONDS="0.2",
        SMS_RETRY_MAX_SECONDS="2",
        SMS_MAX_ATTEMPTS="12",
    )


def counts() -> Counter[str]:
    return Counter(
        dict(OutboundMessage.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    )


def test_killed_worker_loses_nothing_and_sends_nothing_twice(fake_twilio_process: Any) -> None:
    fake = fake_twilio_process
    fake.control(fail_429_rate=0.05, fail_500_rate=0.05)
    Contact.objects.bulk_create(
        Contact(
            first_name=f"C{i}",
            mobile=f"+1212{200 + i // 10000:03d}{i % 10000:04d}",
            country="US",
            timezone="America/New_York",
            custom_fields={"token": f"T{i:05d}"},
        )
        for i in range(MESSAGES)
    )
    text = TextMessage.objects.create(name="Fault", body="Code {{custom.token}}", category="transactional")
    env = _env(fake)
    # Beat runs the pacer every second: it hands messages parked behind their sender's rate their slots.
    beat = procs.start_beat(env=env)
    victim = procs.start_worker(name="victim", concurrency=2, env=env)
    survivor = procs.start_worker(name="survivor", concurrency=1, env=env)
    replacement = None
    try:
        created = services.outbound_enqueue(text_message=text, contacts=Contact.objects.all(), source="broadcast")
        assert created == MESSAGES

        deadline = time.monotonic() + 60
        while OutboundMessage.objects.filter(status=Status.SENT).count() < MESSAGES // 4:
            assert time.monotonic() < deadline, f"too slow before the kill: {counts()}"
            time.sleep(0.1)
        victim.kill(signal.SIGKILL)
        replacement = procs.start_worker(name="replacement", concurrency=2, env=env)

        # The sweeper (beat runs it every minute) with a short threshold, so the test need not wait minutes.
        deadline = time.monotonic() + 75
        while True:
            services.outbound_sweep(stale_after=3)
            left = OutboundMessage.objects.filter(status__in=[Status.QUEUED, Status.SENDING]).count()
            if left == 0:
                break
            assert time.monotonic() < deadline, f"messages still pending: {counts()}"
            time.sleep(1.0)
    finally:
        for proc in (victim, survivor, replacement, beat):
            if proc is not None:
                proc.stop()

    final = counts()
    assert sum(final.values()) == MESSAGES
    assert set(final) <= {Status.SENT, Status.DELIVERED, Status.UNDELIVERED, Status.UNKNOWN}, final
    # fake_twilio answered some requests with 429/500 (it does not log those): they show as retried rows.
    retried = OutboundMessage.objects.filter(attempts__gt=1).count()
    assert retried > MESSAGES * 0.05, f"only {retried} retries: the injected failures did not happen"
    print(f"final statuses {dict(final)}; {retried} messages needed more than one attempt")

    received = Counter((m["to"], m["body"]) for m in fake.messages())
    assert fake.duplicates() == {}
    assert max(received.values()) == 1
    rows = list(OutboundMessage.objects.values_list("to_number", "body", "status", "provider_sid"))
    sent_rows = [r for r in rows if r[2] != Status.UNKNOWN]
    # Every sent row was received exactly once, under the SID we recorded.
    by_key = {(m["to"], m["body"]): m["sid"] for m in fake.messages()}
    for to, body, _status, sid in sent_rows:
        assert by_key.get((to, body)) == sid, (to, body)
    # An unknown row reached fake_twilio at most once, and nothing else reached it.
    assert len(received) == len(sent_rows) + sum(
        1 for to, body, status, _ in rows if status == Status.UNKNOWN and (to, body) in received
    )
    assert len({r[1] for r in rows}) == MESSAGES  # each body carries its own token
