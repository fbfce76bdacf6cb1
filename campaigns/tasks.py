"""Celery tasks of the campaigns app: thin, they take ids and call the engine."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from . import engine, services


@shared_task(name="campaigns.process")
def process_campaigns_task(campaign_id: int | None = None) -> dict[str, Any] | None:
    """The every-minute engine run (beat, queue ``default``); skips itself when another run holds the lock."""
    summary = services.campaigns_process(campaign_id=campaign_id)
    return summary.as_dict() if summary else None


@shared_task(name="campaigns.run_contact_events")
def run_contact_events(contact_id: int) -> dict[str, Any]:
    """Run what a reply made due for one contact, at once (queue ``sms_priority``)."""
    return engine.contact_events_run(contact_id=contact_id).as_dict()
