"""The claim's statements find a chunk's rows by primary key, whatever PostgreSQL's statistics say.

A broadcast's fan-out inserts its queued rows in one go, and until the table is analyzed again PostgreSQL's
statistics do not know them: ``status = 'queued'`` then looks like one row, and a claim that filtered on it locked
its 32 ids by scanning the ``outbound_due`` index through every queued row, once per chunk (or, with the join the
other way round, once per queued row: a priority-isolation run saw two claims of 32 rows run for a minute on 10,000).
The claim now locks the chunk's ids by primary key alone and checks what it locked in Python, and the pacer marks
the line it locked by primary key; these tests read the plans of their statements with the statistics of a freshly
filled table and with none at all."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from contacts.models import Contact
from texts import services
from texts.models import OutboundMessage, Status, TextMessage
from texts.services.dispatch import outbound_claim

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

TABLE = OutboundMessage._meta.db_table


def _queued(count: int) -> list[int]:
    Contact.objects.all().delete()
    Contact.objects.bulk_create((Contact(mobile=f"+1212{i:07d}", country="US") for i in range(count)), batch_size=5000)
    text = TextMessage.objects.create(name="Receipt", body="Paid.", category="transactional")
    assert services.outbound_enqueue(text_message=text, contacts=Contact.objects.all(), source="broadcast") == count
    return sorted(OutboundMessage.objects.values_list("pk", flat=True))


def _forget_statistics() -> None:
    """The table as PostgreSQL sees one that was never analyzed (rolled back with the test's transaction)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        if not cursor.fetchone()[0]:
            pytest.fail("the test database's user must be a superuser to reset a table's statistics")
        cursor.execute("UPDATE pg_class SET reltuples = -1, relpages = 0 WHERE oid = %s::regclass", [TABLE])
        cursor.execute("DELETE FROM pg_statistic WHERE starelid = %s::regclass", [TABLE])


def _plans(statements: list[str]) -> list[str]:
    """Each statement's beginning and its plan, as PostgreSQL would run it now."""
    plans = []
    for sql in statements:
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + sql)
            plans.append(sql[:120] + "\n" + "\n".join(row[0] for row in cursor.fetchall()))
    return plans


def _plans_of_claim(ids: list[int]) -> tuple[list[str], Any]:
    with CaptureQueriesContext(connection) as queries:
        _, rows = outbound_claim(message_ids=ids)
    statements = [
        q["sql"]
        for q in queries.captured_queries
        if TABLE in q["sql"] and q["sql"].lstrip().upper().startswith(("SELECT", "UPDATE"))
    ]
    return _plans(statements), rows


def _assert_by_primary_key(plans: list[str]) -> None:
    """No index that leads with the status or the parked line (what the statistics misjudged). On a table this small
    PostgreSQL may read the 32 ids with one sequential scan instead of the primary key; on a big one it cannot (it
    reads the table's real size when the statistics are gone)."""
    assert plans
    for plan in plans:
        assert "outbound_due" not in plan, plan
        assert "outbound_parked" not in plan, plan
        scans = re.findall(rf"Scan\b[^\n]* on {TABLE}\b", plan)
        assert len(scans) <= 1, plan  # the table read once per statement, never once per row


@pytest.mark.parametrize("statistics", ["never analyzed", "analyzed before the fan-out"])
def test_a_claim_finds_its_rows_by_primary_key(statistics: str) -> None:
    if statistics == "analyzed before the fan-out":
        _queued(10)
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {TABLE}")
        OutboundMessage.objects.all().delete()
    ids = _queued(3000)
    if statistics == "never analyzed":
        _forget_statistics()
    plans, rows = _plans_of_claim(ids[100:132])
    _assert_by_primary_key(plans)
    assert [row.pk for row in rows] == ids[100:132]
    assert {row.status for row in rows} == {Status.SENDING}


def test_a_claim_takes_only_the_due_queued_unparked_rows_of_its_chunk() -> None:
    ids = _queued(40)
    parked, sent, later = ids[0], ids[1], ids[2]
    OutboundMessage.objects.filter(pk=parked).update(schedule="parked")
    OutboundMessage.objects.filter(pk=sent).update(status=Status.SENT)
    OutboundMessage.objects.filter(pk=later).update(next_attempt_at=timezone.now() + dt.timedelta(hours=1))
    _, rows = outbound_claim(message_ids=ids[:10])
    assert [row.pk for row in rows] == ids[3:10]
    statuses = dict(OutboundMessage.objects.filter(pk__in=ids[:3]).values_list("pk", "status"))
    assert statuses == {parked: Status.QUEUED, sent: Status.SENT, later: Status.QUEUED}


def test_the_pacer_hands_out_its_line_by_primary_key() -> None:
    """The pacer locks its sender's line (oldest parked first, the outbound_parked index) and marks what it handed
    out; that second statement must not walk the parked rows again when the statistics do not know them."""
    import uuid

    from providers.base import Sender
    from providers.ratelimit import get_limiter
    from texts.services.pacing import _pace_sender

    from .conftest import StubSenderConfig

    # A sender of its own, so the shared limiter's state of another test cannot leak in.
    sender_config = StubSenderConfig(Sender("number", f"+1415555{uuid.uuid4().int % 10000:04d}"), 1.0)
    ids = _queued(3000)
    OutboundMessage.objects.update(
        schedule="parked", sender=sender_config.sender.value, next_attempt_at=timezone.now() - dt.timedelta(seconds=1)
    )
    _forget_statistics()
    with CaptureQueriesContext(connection) as queries:
        handed = _pace_sender(sender_config, limiter=get_limiter())
    assert handed >= 1
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith(f'UPDATE "{TABLE}"')]
    assert updates
    _assert_by_primary_key(_plans(updates))
    assert OutboundMessage.objects.filter(pk__in=ids, schedule="paced").count() == handed
