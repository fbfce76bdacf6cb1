"""The events, from the signals of the apps below: each receiver asks first whether anyone subscribes (no query when
nobody does), then builds the payloads of the whole batch in one query."""

from __future__ import annotations

import logging
from typing import Any

from contacts.models import Contact
from texts.models import InboundMessage, OutboundMessage, Status

from .models import Event
from .services import hooks_emit, subscribed

logger = logging.getLogger(__name__)

STATUS_EVENTS: dict[str, str] = {
    Status.SENT: Event.MESSAGE_SENT,
    Status.DELIVERED: Event.MESSAGE_DELIVERED,
    Status.FAILED: Event.MESSAGE_FAILED,
    Status.UNDELIVERED: Event.MESSAGE_FAILED,
}
MESSAGE_FIELDS = (
    "id", "contact_id", "to_number", "sender", "text_message_id", "source", "status", "provider_sid", "segments",
    "error_code", "error_message", "price", "price_unit", "queued_at", "sent_at", "delivered_at", "failed_at",
)  # fmt: skip


def on_status(sender: Any, *, message_ids: list[int], status: str, **kwargs: Any) -> None:
    event = STATUS_EVENTS.get(status)
    if event is None or not subscribed(event):
        return
    # Sent from inside the sending engine's outcome write and the status callback: a webhook's trouble must never
    # fail a send or a callback (it is logged, the event is lost for the webhook).
    try:
        rows = OutboundMessage.objects.filter(pk__in=message_ids).values(*MESSAGE_FIELDS)
        hooks_emit(event_type=event, payloads=[{**row, "status": status} for row in rows])
    except Exception:
        logger.exception("webhook event %s not recorded for %d message(s)", event, len(message_ids))


def on_reply(sender: Any, *, inbound: InboundMessage, **kwargs: Any) -> None:
    if not subscribed(Event.REPLY_RECEIVED):
        return
    data = {
        "id": inbound.pk,
        "contact_id": inbound.contact_id,
        "from_number": inbound.from_number,
        "to_number": inbound.to_number,
        "body": inbound.body,
        "media_urls": inbound.media_urls,
        "keyword_action": inbound.action,
        "in_reply_to_id": inbound.in_reply_to_id,
        "received_at": inbound.received_at,
    }
    hooks_emit(event_type=Event.REPLY_RECEIVED, payloads=[data])


def on_click(sender: Any, *, first: bool, **kwargs: Any) -> None:
    # A recipient's first click on a link: what a CRM records (every click is in the report).
    if not first or not subscribed(Event.LINK_CLICKED):
        return
    data = {k: kwargs.get(k) for k in ("link_id", "contact_id", "outbound_id", "text_message_id", "url", "at")}
    hooks_emit(event_type=Event.LINK_CLICKED, payloads=[data])


def on_dnc(sender: Any, *, contact_ids: list[int], channel: str, active: bool, source: str, **kwargs: Any) -> None:
    event = Event.CONTACT_OPTED_OUT if active else Event.CONTACT_OPTED_IN
    if not subscribed(event):
        return
    rows = Contact.objects.filter(pk__in=contact_ids).values("id", "mobile", "email", "first_name", "last_name")
    hooks_emit(
        event_type=event,
        payloads=[
            {
                "contact_id": r["id"],
                **{k: str(v or "") for k, v in r.items() if k != "id"},
                "channel": channel,
                "source": source,
            }
            for r in rows
        ],
    )
