"""Reactions to the texts app's signals (the texts app does not know campaigns exist)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from . import engine


def on_inbound_received(sender: Any, **kwargs: Any) -> None:
    """A reply: decisions waiting for this contact take their yes path, and what follows runs now, not at the next
    engine run."""
    inbound = kwargs.get("inbound")
    contact = kwargs.get("contact")
    contact_id = kwargs.get("contact_id") or getattr(contact, "pk", None) or getattr(inbound, "contact_id", None)
    body = kwargs.get("body")
    if body is None:
        body = getattr(inbound, "body", "") or ""
    if not contact_id:
        return
    moved = engine.reply_received(
        contact_id=int(contact_id),
        body=str(body),
        button_text=str(kwargs.get("button_text") or ""),
        button_payload=str(kwargs.get("button_payload") or ""),
    )
    if moved:
        from .tasks import run_contact_events

        transaction.on_commit(
            lambda: run_contact_events.apply_async(args=[int(contact_id)], queue="sms_priority")  # type: ignore[arg-type]
        )


def on_link_clicked(sender: Any, **kwargs: Any) -> None:
    """A click on a tracked link: "clicks a link" decisions waiting for this contact take their yes path, and what
    follows runs now."""
    from .waits import link_clicked

    contact_id = kwargs.get("contact_id")
    if not contact_id:
        return
    moved = link_clicked(contact_id=int(contact_id), url=str(kwargs.get("url") or ""))
    if moved:
        from .tasks import run_contact_events

        transaction.on_commit(
            lambda: run_contact_events.apply_async(args=[int(contact_id)], queue="sms_priority")  # type: ignore[arg-type]
        )
