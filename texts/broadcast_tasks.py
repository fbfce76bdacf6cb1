"""Celery tasks of broadcasts: thin, they take ids and call ``texts.broadcasts`` (imported by ``texts.tasks``)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from .broadcasts import DEFAULT_BATCH, broadcast_progress, broadcasts_send_all


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
        from .broadcasts import _progress_set

        # Not due (unpublished, outside its window, no segments): say so instead of spinning forever.
        _progress_set(text_message_id, state="failed", queued=0, target=0, summary="Not sent: it is not due now.")
    return result
