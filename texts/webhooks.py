"""What texts does with the events a provider's webhook hands it (connected to ``providers.webhooks`` when the app is
ready): a reply is stored and its keyword answered, a status moves its message (``texts.inbound`` does the work).

The provider's view has verified and parsed the request and renders the reply returned here in its own format.
"""

from __future__ import annotations

import logging
import time

from django.db import InterfaceError, OperationalError, connection

from providers.base import InboundEvent, StatusEvent, WebhookRejected

from .inbound import callback_oversized_fields, inbound_receive
from .status_buffer import outbound_status_receive

logger = logging.getLogger(__name__)

DATABASE_UNREACHABLE = (OperationalError, InterfaceError)
CALLBACK_DATABASE_PATIENCE_SECONDS = 8.0


def webhook_receive(
    event: InboundEvent | StatusEvent, *, outbound_id: int | None, help_text: str, can_reply: bool
) -> str:
    """Apply one webhook event; the text to answer a reply with ("" for none).

    Raises ``WebhookRejected(400)`` for a field that does not fit its column. Providers do not retry a webhook we
    fail, so a database restart (a second or two) is ridden out here, inside their timeouts. Both paths are
    idempotent: a reply is stored once per message id, a status never moves back.
    """
    oversized = callback_oversized_fields(event)
    if oversized:
        raise WebhookRejected(400, " ".join(oversized))
    delay = 0.2
    deadline = time.monotonic() + CALLBACK_DATABASE_PATIENCE_SECONDS
    while True:
        try:
            return _handle(event, outbound_id, help_text=help_text, can_reply=can_reply)
        except DATABASE_UNREACHABLE:
            if time.monotonic() + delay > deadline:
                raise
            logger.warning("callback: database unreachable, retrying in %.1fs", delay)
            if not connection.in_atomic_block:
                connection.close_if_unusable_or_obsolete()  # reconnect on the next query if the server went away
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def _handle(event: InboundEvent | StatusEvent, outbound_id: int | None, *, help_text: str, can_reply: bool) -> str:
    if isinstance(event, InboundEvent):
        result = inbound_receive(event=event, help_text=help_text, can_reply=can_reply)
        if not result.created:
            logger.info("inbound %s received again (a retry): nothing changed", event.message_sid)
        return result.reply
    # Buffered for the flusher when there is a Redis to buffer in, else applied now (texts.status_buffer).
    outbound_status_receive(event=event, outbound_id=outbound_id)
    return ""
