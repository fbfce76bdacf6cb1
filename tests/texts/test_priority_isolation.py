"""Nothing waits behind a big broadcast, in the deployments the project ships.

With 10,000 broadcast messages queued on one US long code (1 message a second), started with the shipped worker
command lines (the Procfile's on the embedded defaults that `make run` uses; docker-compose.yml's on PostgreSQL and
Redis), a transactional API send to another contact reaches fake_twilio within 10 s, a 10-row import finishes within
20 s, the worker heartbeat stays fresh, and the broadcast itself never goes faster than its sender allows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.utils import timezone

from contacts.importer import contact_import_create, contact_import_queue
from contacts.models import Contact, ContactImport
from contacts.tasks import import_contacts
from smsapp.core.tasks import HEARTBEAT_KEY
from smsapp.models import ApiToken
from smsapp.testing import procs
from smsapp.testing.deploy import shipped_workers
from tests.consent_helpers import give_consent
from tests.real_workers import worker_env
from texts import services
from texts.models import OutboundMessage, Status, TextMessage

LONG_CODE = "+12025550123"  # a US long code: Twilio's default is one message a second
BACKLOG = 10_000
URGENT = "+12025550999"


def _env(fake: Any) -> dict[str, str]:
    return worker_env(
        fake,
        sender=LONG_CODE,
        SMS_QUIET_HOURS_START="00:00",
        SMS_QUIET_HOURS_END="23:59",
    )


@pytest.fixture
def deployment_processes(request: pytest.FixtureRequest, fake_twilio_process: Any) -> Iterator[list[procs.Proc]]:
    env = _env(fake_twilio_process)
    started = [procs.start_beat(env=env)]
    try:
        for name, argv in shipped_workers(request.param).items():
            proc = procs.Proc(name, argv, env)
            started.append(proc)
        for proc in started[1:]:
            proc.wait_for_output(" ready.", timeout=90)
        yield started
    finally:
        procs.stop_all(started)


def _wait(predicate: Any, *, timeout: float, what: str, interval: float = 0.1) -> float:
    """Seconds until ``predicate()`` held (bounded)."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout} s"
        time.sleep(interval)
    return time.monotonic() - started


def _where_it_stalled(processes: list[procs.Proc]) -> str:
    """For a failure: what every session of this database waits on, the end of each process's log and every thread's
    stack in each (a run under load once saw the bulk sender's two batches make no progress for 60 s, with no error
    in any log; this is what would tell why)."""
    from django.db import connection

    lines = []
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid, state, wait_event_type, wait_event, now() - xact_start, left(query, 160) "
                "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            lines += [" | ".join(str(v) for v in row) for row in cursor.fetchall()]
    for proc in processes:
        lines.append(f"--- {proc.name}:\n{proc.output()[-1500:]}\n--- {proc.name}'s threads:\n{proc.stacks()}")
    return "\n".join(lines)


def _nothing_waits_behind_a_broadcast(fake: Any, processes: list[procs.Proc]) -> None:
    Contact.objects.bulk_create(
        Contact(mobile=f"+1212{200 + i // 10000:03d}{i % 10000:04d}", country="US", timezone="America/New_York")
        for i in range(BACKLOG)
    )
    urgent = Contact.objects.create(mobile=URGENT, first_name="Grace", country="US")
    give_consent(Contact.objects.exclude(pk=urgent.pk).values_list("pk", flat=True))  # the sale is marketing
    broadcast = TextMessage.objects.create(name="Sale", body="Sale today!", category="marketing")
    receipt = TextMessage.objects.create(name="Receipt", body="Paid, {{first_name}}.", category="transactional")
    started_at = time.time()
    assert (
        services.outbound_enqueue(
            text_message=broadcast, contacts=Contact.objects.exclude(pk=urgent.pk), source="broadcast"
        )
        == BACKLOG
    )
    # The backlog is in place: the first broadcast messages went, the rest wait in the long code's line.
    try:
        _wait(lambda: len(fake.messages()) >= 2, timeout=60, what="the broadcast starting")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_where_it_stalled(processes)}") from None
    _wait(
        lambda: OutboundMessage.objects.filter(status=Status.QUEUED, schedule="parked").count() >= BACKLOG // 2,
        timeout=60,
        what="the broadcast's backlog parking behind its sender",
    )

    user = User.objects.create_user("marketer", password="unused-in-this-test")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(user=user, name='test')[1]}")
    heartbeat_before = cache.get(HEARTBEAT_KEY) or ""
    sent_at = time.monotonic()
    response = api.post(
        f"/api/v1/text-messages/{receipt.pk}/send", {"contact_id": urgent.pk}, content_type="application/json"
    )
    assert response.status_code in (200, 201, 202), response.content
    took = _wait(lambda: any(m["to"] == URGENT for m in fake.messages()), timeout=10, what="the transactional API send")
    print(f"transactional send reached fake_twilio {took:.1f} s after the API call, behind {BACKLOG} queued")

    with transaction.atomic():
        upload = SimpleUploadedFile(
            "ten.csv", b"mobile,first name\n" + b"".join(b"+1646555%04d,N%d\n" % (i, i) for i in range(10))
        )
        record = contact_import_create(upload=upload, mode="update", region="US", segment=None, created_by="test")
        contact_import_queue(contact_import=record, mapping=record.mapping, enqueue=import_contacts.delay)

    def imported() -> bool:
        record.refresh_from_db()
        return record.status == ContactImport.Status.DONE

    took = _wait(imported, timeout=20, what="a 10-row import", interval=0.2)
    assert record.created_count == 10
    print(f"10-row import done in {took:.1f} s")

    # Beat schedules the heartbeat every 30 s on the housekeeping queue: a fresh one arrives despite the backlog.
    took = _wait(
        lambda: (cache.get(HEARTBEAT_KEY) or "") > heartbeat_before, timeout=45, what="a fresh worker heartbeat"
    )
    assert timezone.now().isoformat() >= str(cache.get(HEARTBEAT_KEY))
    print(f"heartbeat {took:.1f} s after the send: {cache.get(HEARTBEAT_KEY)}")
    assert time.monotonic() - sent_at < 60

    # The broadcast kept to its sender's rate all along, and no message went twice.
    stamps = sorted(float(m["received_at"]) for m in fake.messages() if m["to"] != URGENT)
    elapsed = time.time() - started_at
    assert len(stamps) <= elapsed * 1.0 + 2, f"{len(stamps)} broadcast messages in {elapsed:.1f} s on a 1/s sender"
    assert len(stamps) >= 2
    assert fake.duplicates() == {}
    for proc in processes:
        assert proc.popen.poll() is None, f"{proc.name} exited:\n{proc.output()[-3000:]}"


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("deployment_processes", ["compose"], indirect=True)
def test_nothing_waits_behind_a_broadcast_with_the_docker_compose_workers(
    fake_twilio_process: Any, deployment_processes: list[procs.Proc]
) -> None:
    _nothing_waits_behind_a_broadcast(fake_twilio_process, deployment_processes)


@pytest.mark.embedded
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("deployment_processes", ["procfile"], indirect=True)
def test_nothing_waits_behind_a_broadcast_with_the_procfile_workers_on_embedded_defaults(
    fake_twilio_process: Any, deployment_processes: list[procs.Proc]
) -> None:
    _nothing_waits_behind_a_broadcast(fake_twilio_process, deployment_processes)
