"""Celery tasks of the texts app: thin, they take ids and call a service."""

from __future__ import annotations

import redis
from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from .services import outbound_pace, outbound_process_batch, outbound_sweep
from .services.broadcasts import DEFAULT_BATCH, _progress_set, broadcast_progress, broadcasts_send_all

# The database unreachable (a restart, a failover): the batch is intact, so try it again shortly rather than let the
# failure be acknowledged and the batch dropped; every worker would otherwise drain the whole queue into failures in
# the second the server is away. Rows the failed attempt had claimed are the sweeper's, as after a worker crash.
DATABASE_UNREACHABLE = (OperationalError, InterfaceError)
# The shared rate limiter (Redis) unreachable: the same, since a batch cannot be planned without it.
LIMITER_UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


@shared_task(
    name="texts.outbound_send_batch",
    acks_late=True,
    autoretry_for=DATABASE_UNREACHABLE + LIMITER_UNREACHABLE,
    retry_backoff=1,
    retry_backoff_max=30,
    retry_jitter=True,
    # About ten minutes of attempts; past that, the sweeper re-enqueues queued rows whose task is gone.
    max_retries=25,
)
def outbound_send_batch(message_ids: list[int]) -> dict[str, int]:
    """Claim and send a batch of queued outbound messages (rows another worker holds are skipped)."""
    outcome = outbound_process_batch(message_ids=[int(i) for i in message_ids])
    return {name: len(ids) for name, ids in vars(outcome).items()}


@shared_task(name="texts.outbound_sweep")
def outbound_sweep_task() -> dict[str, int]:
    """Beat, every minute: requeue or mark unknown the rows of workers that died; re-enqueue lost tasks."""
    result = outbound_sweep()
    return {"requeued": len(result.requeued), "unknown": len(result.unknown), "reenqueued": len(result.reenqueued)}


@shared_task(name="texts.outbound_pace", ignore_result=True)
def outbound_pace_task() -> dict[str, int]:
    """Beat, every second: each sender's free capacity to its parked messages (``texts.services.pacing``)."""
    result = outbound_pace()
    return {**result.handed, "orphans": result.orphans}


@shared_task(name="texts.outbound_reconcile")
def outbound_reconcile_task() -> dict[str, int | str]:
    """Beat: ask the provider for the statuses whose callback never came (``texts.reconcile``)."""
    from .reconcile import outbound_reconcile

    result = outbound_reconcile()
    return {
        "checked": result.checked,
        "moved": result.moved,
        "not_found": result.not_found,
        "priced": result.priced,
        "stopped": result.stopped,
    }


@shared_task(
    name="texts.statuses_flush",
    ignore_result=True,
    acks_late=True,
    autoretry_for=DATABASE_UNREACHABLE + LIMITER_UNREACHABLE,
    retry_backoff=1,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=25,
)
def statuses_flush_task() -> dict[str, int]:
    """Armed by the first buffered status callback, and by beat as a safety net: apply the buffered statuses in
    batches (``texts.status_buffer``). A failed batch is back in the buffer before the retry."""
    from .status_buffer import status_buffer_flush

    result = status_buffer_flush()
    return {"applied": result.applied, "batches": result.batches, "recovered": result.recovered, "left": result.left}


# Broadcasts: the same job as ``manage.py send_broadcasts`` (``texts.services.broadcasts``).


@shared_task(name="texts.broadcasts_send")
def broadcasts_send_task(text_message_id: int | None = None) -> dict[str, int]:
    """Beat, every minute (and "Send now" for one message): the same job as ``manage.py send_broadcasts``."""
    ids = None if text_message_id is None else [int(text_message_id)]
    batch = int(getattr(settings, "BROADCASTS_BATCH", DEFAULT_BATCH))
    runs = broadcasts_send_all(text_message_ids=ids, batch=batch)
    return {"messages": len(runs), "queued": sum(r.queued for r in runs), "locked": sum(r.locked for r in runs)}


@shared_task(name="texts.broadcast_send")
def broadcast_send_task(text_message_id: int) -> dict[str, int]:
    """ "Send now" on the text message page: one message, if it is due."""
    result = broadcasts_send_task(text_message_id)
    if result["messages"] == 0 and broadcast_progress(text_message_id=text_message_id).state == "queued":
        # Not due (unpublished, outside its window, no segments): say so instead of spinning forever.
        _progress_set(text_message_id, state="failed", queued=0, target=0, summary="Not sent: it is not due now.")
    return result
