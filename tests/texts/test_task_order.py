"""On the Redis broker, tasks carrying rows whose moment has come (the pacer's, a backoff's, the sweep's) are taken
before tasks carrying a fan-out's new rows that were queued earlier: a million-contact fan-out's thousands of batches
only claim and park on a slow sender, and the sends the pacer timed to their slots must not wait behind them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction

from texts.services import enqueue_after_commit
from texts.services.broadcasts import _enqueue_batch
from texts.services.outbound import _enqueue_tasks

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def bulk_queue(settings: Any) -> Iterator[Any]:
    """The real Redis broker's ``sms_bulk`` queue, read as a worker would (kombu, priority lists in order)."""
    if not os.environ.get("REDIS_URL"):
        pytest.skip("needs Redis (run under smsapp.testing.services)")
    from smsapp.celery import app

    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue("sms_bulk")
        queue.clear()
        yield queue
        queue.clear()
        queue.close()


def _next_ids(queue: Any) -> list[int]:
    message = queue.get(timeout=5)
    message.ack()
    args = message.payload[0] if isinstance(message.payload, list) else message.payload["args"]
    return list(args[0])


def test_a_due_send_is_taken_before_a_fan_outs_batches_queued_earlier(bulk_queue: Any) -> None:
    for start in range(0, 3000, 1000):
        _enqueue_batch(list(range(start, start + 1000)))  # a broadcast's fan-out
    _enqueue_tasks([1, 2, 3], priority=False, new_rows=True)  # rows a send to a segment queued (new ones too)
    with transaction.atomic():
        enqueue_after_commit([424242], priority=False)  # the pacer woke a parked row: its slot is now
    assert _next_ids(bulk_queue) == [424242]
    assert [_next_ids(bulk_queue)[0] for _ in range(4)] == [0, 1000, 2000, 1]  # then the rest, oldest first
