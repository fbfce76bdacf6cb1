"""``POST /sms/console/callback`` (DEBUG only): a simulated reply or status, in the console's own plain fields, for
trying keywords and campaign decisions without any provider. The answer is the reply as plain text."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse

from .. import webhooks
from ..base import InboundEvent, WebhookRejected, callback_message_id
from .provider import ConsoleProvider

logger = logging.getLogger(__name__)


@webhooks.webhook_view
def console_callback(request: HttpRequest) -> HttpResponse:
    provider = ConsoleProvider()
    try:
        event = provider.parse_webhook(url=request.path, params=request.POST.dict(), headers=dict(request.headers))
        help_text = provider.config.help_text if isinstance(event, InboundEvent) else ""
        reply = webhooks.receive(event, outbound_id=callback_message_id(request.GET), help_text=help_text)
    except WebhookRejected as exc:
        logger.warning("console callback refused (%s): %s", exc.status, exc.reason)
        return HttpResponse(exc.reason, status=exc.status, content_type="text/plain")
    return HttpResponse(reply, content_type="text/plain")
