"""Celery tasks of the texts app: thin, they take ids and call a service."""

from __future__ import annotations

from celery import shared_task

from .services import outbound_process_batch, outbound_sweep


@shared_task(name="texts.outbound_send_batch", acks_late=True)
def outbound_send_batch(message_ids: list[int]) -> dict[str, int]:
    """Claim and send a batch of queued outbound messages (rows another worker holds are skipped)."""
    outcome = outbound_process_batch(message_ids=[int(i) for i in message_ids])
    return {name: len(ids) for name, ids in vars(outcome).items()}


@shared_task(name="texts.outbound_sweep")
def outbound_sweep_task() -> dict[str, int]:
    """Beat, every minute: requeue or mark unknown the rows of workers that died; re-enqueue lost tasks."""
    result = outbound_sweep()
    return {"requeued": len(result.requeued), "unknown": len(result.unknown), "reenqueued": len(result.reenqueued)}
