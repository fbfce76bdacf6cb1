"""Broadcasts as cron runs them: real ``manage.py send_broadcasts`` child processes on PostgreSQL + Redis.

Two runs at once never both work on one message; a run killed with SIGKILL leaves whole batches and frees its lock;
and a real Celery worker carries every queued row to fake_twilio, exactly one message per recipient.

To stop a run at a known point, the test holds an uncommitted broadcast row for one contact in the middle: the run's
INSERT for that batch waits on the unique index until the test rolls back (no sleeps, no timing).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, transaction
from django.db.models import Count

from contacts.models import Contact, DoNotContact, Segment
from contacts.services import dnc_add, segment_add_contacts
from smsapp.testing import procs
from tests.consent_helpers import give_consent
from tests.real_workers import worker_env
from texts.models import OutboundMessage, Status, TextMessage

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

OUTBOUND = OutboundMessage._meta.db_table


def make_contacts(n: int, *, zone: str = "America/New_York", first: int = 0) -> list[Contact]:
    contacts = Contact.objects.bulk_create(
        Contact(first_name=f"C{i}", mobile=f"+1212{300 + i // 10000:03d}{i % 10000:04d}", country="US", timezone=zone)
        for i in range(first, first + n)
    )
    give_consent(contacts)  # the broadcasts are marketing
    return contacts


def make_broadcast(contacts: list[Contact], *, name: str = "Broadcast") -> TextMessage:
    segment = Segment.objects.create(name=f"{name} audience")
    segment_add_contacts(segment=segment, contact_ids=[c.pk for c in contacts], record=False)
    text = TextMessage.objects.create(name=name, body="Hi {{first_name}}")
    text.segments.set([segment])
    return text


def per_contact(text: TextMessage) -> Counter[int]:
    rows = OutboundMessage.objects.filter(text_message=text).values_list("contact_id").annotate(n=Count("id"))
    return Counter(dict(rows.values_list("contact_id", "n")))


def start_run(*args: str, name: str = "send_broadcasts") -> procs.Proc:
    return procs.Proc(
        name, [sys.executable, str(procs.BASE_DIR / "manage.py"), "send_broadcasts", *args], procs.child_env()
    )


def wait_until(check: Any, what: str, timeout: float = 60.0, proc: procs.Proc | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if proc is not None and proc.popen.poll() is not None:
            raise AssertionError(f"{proc.name} exited ({proc.popen.returncode}) before {what}:\n{proc.output()}")
        if time.monotonic() > deadline:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pid, state, wait_event_type, wait_event, left(query, 200) FROM pg_stat_activity")
                activity = cursor.fetchall()
            raise AssertionError(f"timed out waiting for {what}: {activity}\n{proc.output() if proc else ''}")
        time.sleep(0.05)


def blocked_insert_pids() -> list[int]:
    """Backends of other sessions waiting on a lock inside an INSERT into the outbound log."""
    with connection.cursor() as cursor:
        # Inside a transaction PostgreSQL keeps showing its first snapshot of the statistics: take a fresh one.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND wait_event_type = 'Lock' AND query LIKE %s",
            [f"%INSERT INTO {OUTBOUND}%"],
        )
        return [row[0] for row in cursor.fetchall()]


def backend_alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone() is not None


@contextlib.contextmanager
def held_row(text: TextMessage, contact: Contact) -> Iterator[None]:
    """An uncommitted broadcast row for ``contact``: a run that reaches its batch waits until this rolls back."""
    with transaction.atomic():
        OutboundMessage.objects.create(
            contact=contact, to_number=str(contact.mobile), text_message=text, source="broadcast"
        )
        yield
        transaction.set_rollback(True)


def test_two_concurrent_runs_never_work_on_the_same_message() -> None:
    contacts = make_contacts(50)
    text = make_broadcast(contacts)
    first = start_run("--batch", "10", name="first")
    try:
        with held_row(text, contacts[25]):
            wait_until(blocked_insert_pids, "the first run to reach the held batch", proc=first)
            second = procs.manage("send_broadcasts", "--batch", "10")
            assert second.returncode == 0, second.stderr
            assert "another run is sending it" in second.stdout
        assert first.popen.wait(timeout=60) == 0, first.output()
    finally:
        first.stop()
    assert "queued 50" in first.output()
    assert per_contact(text) == Counter({c.pk: 1 for c in contacts})


def test_simultaneous_runs_send_each_contact_once() -> None:
    contacts = make_contacts(600)
    texts = [make_broadcast(contacts, name=f"Broadcast {i}") for i in range(2)]
    runs = [start_run("--batch", "25", name=f"run{i}") for i in range(3)]
    try:
        codes = [run.popen.wait(timeout=120) for run in runs]
    finally:
        for run in runs:
            run.stop()
    assert codes == [0, 0, 0], [run.output() for run in runs]
    for text in texts:
        assert per_contact(text) == Counter({c.pk: 1 for c in contacts})
    # The command's own lines (the logger repeats them with a prefix).
    summaries = [line for run in runs for line in run.output().splitlines() if line.startswith("text message")]
    # Each message was fanned out by exactly one run; the others found it locked or already sent.
    for text in texts:
        fanned = [line for line in summaries if line.startswith(f"text message {text.pk} “{text.name}”: queued 600")]
        assert len(fanned) == 1, summaries


def test_run_killed_mid_way_then_run_again_sends_the_rest_none_twice() -> None:
    contacts = make_contacts(50)
    text = make_broadcast(contacts)
    victim = start_run("--batch", "10", name="victim")
    try:
        with held_row(text, contacts[25]):
            [pid] = wait_until(blocked_insert_pids, "the run to reach the held batch", proc=victim)
            victim.kill(signal.SIGKILL)
        # The killed run's session ends (and its advisory lock goes) once its INSERT stops waiting.
        wait_until(lambda: not backend_alive(pid), "the killed run's session to end")
    finally:
        victim.stop()
    # Two whole batches committed before the kill; the third was rolled back with the dead session.
    assert sum(per_contact(text).values()) == 20

    again = procs.manage("send_broadcasts", "--batch", "10")

    assert again.returncode == 0, again.stderr
    assert "queued 30" in again.stdout
    assert "20 already sent" in again.stdout
    assert per_contact(text) == Counter({c.pk: 1 for c in contacts})


def test_cron_run_then_real_worker_delivers_exactly_one_message_each(fake_twilio: Any) -> None:
    # Contacts whose local time is midday, so quiet hours (08:00-21:00 by default) let marketing through now.
    hour = dt.datetime.now(dt.UTC).hour
    offset = 12 - hour  # -11 … +12
    zone = f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT"
    contacts = make_contacts(240, zone=zone)
    no_number = Contact.objects.create(first_name="NoNumber")
    overlap = Segment.objects.create(name="Overlap")
    segment_add_contacts(segment=overlap, contact_ids=[c.pk for c in contacts[100:]] + [no_number.pk], record=False)
    text = make_broadcast(contacts[:200])
    text.segments.add(overlap)
    dnc = contacts[10]
    dnc_add(contact=dnc, reason=DoNotContact.Reason.UNSUBSCRIBED, source=DoNotContact.Source.MARKETER)
    expected = {str(c.mobile) for c in contacts if c.pk != dnc.pk}

    env = worker_env(
        fake_twilio,
        sender="+1234567,+1234568,+1234569",
    )
    worker = procs.start_worker(queues="sms_bulk,sms_priority", env=env)
    beat = procs.start_beat(env=env)  # the pacer: messages parked behind their sender's rate get their slots
    try:
        run = procs.manage("send_broadcasts", "--batch", "50", env=env)
        assert run.returncode == 0, run.stderr
        assert "queued 239, skipped 1 Do Not Contact, 1 without a number, 0 already sent" in run.stdout
        # Where the sending stands, and the sender whose limit sets the time left.
        assert "  sending: " in run.stdout
        assert "allows 100 messages/s: about" in run.stdout
        wait_until(
            lambda: not OutboundMessage.objects.filter(status__in=[Status.QUEUED, Status.SENDING]).exists(),
            "the worker to send every queued row",
            timeout=120,
        )
        again = procs.manage("send_broadcasts", env=env)
        assert "queued 0" in again.stdout
        assert "239 already sent" in again.stdout
    finally:
        beat.stop()
        worker.stop()

    received = Counter(m["to"] for m in fake_twilio.messages())
    assert set(received) == expected
    assert max(received.values()) == 1
    assert fake_twilio.duplicates() == {}
    assert OutboundMessage.objects.filter(text_message=text, status=Status.SENT).count() == len(expected)
