"""Real worker, real PostgreSQL: send tasks that run while the database refuses connections are retried, not dropped.

Without the retry, each task fails at its first query, is acknowledged (acks_late acks a failure) and is gone: the
rows stay queued until the sweeper's next re-enqueue. bench/faults.py found it during a PostgreSQL restart.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.db import connection

from contacts.models import Contact
from smsapp.testing import procs
from tests.real_workers import worker_env
from texts import services
from texts.models import OutboundMessage, Status, TextMessage

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MESSAGES = 40


def _allow_connections(allow: bool) -> None:
    import psycopg

    params = connection.get_connection_params()
    name = connection.ops.quote_name(connection.settings_dict["NAME"])
    # From another database (PostgreSQL will not close the one a session is in). Connections already open (this
    # test's) survive; every new one is refused, as while the server restarts.
    with psycopg.connect(**{**params, "dbname": "postgres"}, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS {'true' if allow else 'false'}")


def test_send_tasks_survive_a_database_that_refuses_connections(fake_twilio_process: Any) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    fake = fake_twilio_process
    Contact.objects.bulk_create(
        Contact(first_name=f"C{i}", mobile=f"+1212300{i:04d}", country="US") for i in range(MESSAGES)
    )
    text = TextMessage.objects.create(name="Outage", body="Hi {{first_name}}", category="transactional")
    env = worker_env(
        fake,
        sender="+1234567",
    )
    # Queued first (tasks in Redis), then the database closes its doors, then a worker takes the tasks.
    assert services.outbound_enqueue(text_message=text, contacts=Contact.objects.all(), source="broadcast") == MESSAGES
    _allow_connections(False)
    worker = None
    try:
        worker = procs.start_worker(name="outage", concurrency=2, env=env)
        worker.wait_for_output("OperationalError", timeout=60)
        time.sleep(2)
        _allow_connections(True)
        # No sweeper here: only the tasks' own retries can send these rows.
        deadline = time.monotonic() + 90
        while OutboundMessage.objects.filter(status__in=[Status.QUEUED, Status.SENDING]).exists():
            assert time.monotonic() < deadline, "rows still queued: their tasks were dropped, not retried"
            time.sleep(0.5)
    finally:
        _allow_connections(True)
        if worker is not None:
            worker.stop()
    assert OutboundMessage.objects.filter(status=Status.SENT).count() == MESSAGES
    assert fake.duplicates() == {}
    assert len(fake.messages()) == MESSAGES
