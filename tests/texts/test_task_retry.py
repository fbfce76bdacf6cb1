"""A send task whose database goes away (PostgreSQL restarting) is retried, not acknowledged and dropped.

Found by bench/faults.py: during a one-second ``pg_ctl restart`` the workers took task after task from ``sms_bulk``,
each failed at once with OperationalError and was acknowledged (acks_late acks a failure), so most of the queue was
dropped and only the sweeper's re-enqueue of stale queued rows, a minute later, brought it back.
"""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import InterfaceError, OperationalError

from texts import tasks
from texts.services import BatchOutcome

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
def test_send_task_retries_when_the_database_is_unreachable(error: type[Exception]) -> None:
    calls: list[list[int]] = []

    def flaky(*, message_ids: list[int]) -> BatchOutcome:
        calls.append(message_ids)
        if len(calls) == 1:
            raise error("connection failed: the database system is shutting down")
        return BatchOutcome(sent=message_ids)

    with mock.patch.object(tasks, "outbound_process_batch", side_effect=flaky):
        result = tasks.outbound_send_batch.apply(args=([7, 8],))
    # The same batch ran again after the failure; nothing was given up.
    assert calls == [[7, 8], [7, 8]]
    assert result.state != "FAILURE", result.traceback


def test_send_task_retry_is_bounded_and_backs_off() -> None:
    task = tasks.outbound_send_batch
    assert OperationalError in task.autoretry_for
    assert task.retry_backoff
    assert task.retry_jitter
    # Bounded: past this the sweeper's re-enqueue of stale queued rows is the safety net.
    assert task.max_retries is not None
    assert 5 <= task.max_retries <= 50
    assert task.retry_backoff_max <= 60


def test_send_task_does_not_retry_other_errors() -> None:
    with mock.patch.object(tasks, "outbound_process_batch", side_effect=ValueError("a bug")) as process:
        result = tasks.outbound_send_batch.apply(args=([7],))
    assert process.call_count == 1
    assert result.state == "FAILURE"
