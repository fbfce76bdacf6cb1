"""Twilio's webhook (``POST /sms/twilio/callback``).

The webhook is thin: the provider verifies the signature and parses the fields, ``texts.inbound`` does the work, and
the answer is TwiML built with the ``twilio`` package (``<Response/>``, or one ``<Message>`` for a keyword reply).
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.twiml.messaging_response import MessagingResponse

from providers.base import InboundEvent, StatusEvent, WebhookRejected
from providers.config import get_config
from providers.registry import get_provider

from .inbound import callback_oversized_fields, inbound_receive, outbound_status_apply

logger = logging.getLogger(__name__)

DATABASE_UNREACHABLE = (OperationalError, InterfaceError)
CALLBACK_DATABASE_PATIENCE_SECONDS = 8.0


# Most answers (every status callback, most replies) are the empty <Response/>: built once, by the twilio package.
EMPTY_TWIML = str(MessagingResponse())


def _twiml(reply: str = "") -> HttpResponse:
    if not reply:
        return HttpResponse(EMPTY_TWIML, content_type="application/xml")
    response = MessagingResponse()
    response.message(reply)
    return HttpResponse(str(response), content_type="application/xml")


@csrf_exempt
@require_POST
def twilio_callback(request: HttpRequest) -> HttpResponse:
    """Inbound replies and delivery status callbacks alike (Twilio posts both to the same URL)."""
    # No CONN_HEALTH_CHECKS round trip (a SELECT 1 before the first query) for the busiest URL: the loop below already
    # replaces a connection the server dropped, and that check was 5-8% of a status callback's CPU. (Django's own
    # flag, which it resets at the start of every request; django-stubs do not declare it.)
    connection.health_check_done = True  # type: ignore[attr-defined]
    # The URL Twilio signed is the public one (behind a proxy the request's own host and scheme differ).
    url = settings.PUBLIC_BASE_URL + request.get_full_path()
    try:
        event = get_provider().parse_webhook(url=url, params=request.POST.dict(), headers=dict(request.headers))
    except WebhookRejected as exc:
        logger.warning("Twilio callback refused (%s): %s", exc.status, exc.reason)
        return HttpResponse(exc.reason, status=exc.status, content_type="text/plain")
    oversized = callback_oversized_fields(event)
    if oversized:
        logger.warning("Twilio callback refused (400): %s", " ".join(oversized))
        return HttpResponse(" ".join(oversized), status=400, content_type="text/plain")
    hint = request.GET.get("m", "")
    outbound_id = int(hint) if hint.isdigit() and len(hint) < 19 else None
    # Twilio does not retry a webhook we fail, so ride out a database restart (a second or two) here, inside Twilio's
    # 15-second timeout. Both paths are idempotent: a reply is stored once per MessageSid, a status never moves back.
    delay = 0.2
    deadline = time.monotonic() + CALLBACK_DATABASE_PATIENCE_SECONDS
    while True:
        try:
            return _handle(event, outbound_id)
        except DATABASE_UNREACHABLE:
            if time.monotonic() + delay > deadline:
                raise
            logger.warning("Twilio callback: database unreachable, retrying in %.1fs", delay)
            if not connection.in_atomic_block:
                connection.close_if_unusable_or_obsolete()  # reconnect on the next query if the server went away
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def _handle(event: InboundEvent | StatusEvent, outbound_id: int | None) -> HttpResponse:
    if isinstance(event, InboundEvent):
        config = get_config()
        # The reply came to one of our senders: a pool number can answer even when the default is an alphanumeric
        # ID (US contacts are sent from the pool, and their replies come back to it).
        sender = config.sender_for(event.to_number) or config.default_sender
        can_reply = config.inbound_enabled and (sender is None or sender.sender.can_receive_replies)
        result = inbound_receive(event=event, help_text=config.help_text, can_reply=can_reply)
        if not result.created:
            logger.info("inbound %s received again (a retry): nothing changed", event.message_sid)
        return _twiml(result.reply)
    outbound_status_apply(event=event, outbound_id=outbound_id)
    return _twiml()
