"""Celery tasks of outgoing webhooks: thin, they take ids and call ``hooks.services`` (queue ``default``)."""

from __future__ import annotations

from celery import shared_task

from .services import deliveries_send, deliveries_sweep


@shared_task(name="hooks.deliver")
def deliver_task(delivery_ids: list[int]) -> dict[str, int]:
    """POST a batch of deliveries; failures are scheduled again by the service (backoff, for a day)."""
    return deliveries_send(delivery_ids=[int(i) for i in delivery_ids])


@shared_task(name="hooks.sweep")
def sweep_task() -> dict[str, int]:
    """Beat, every 30 s: deliveries due without a task, ones a dead worker held, old delivered ones removed."""
    return deliveries_sweep()
