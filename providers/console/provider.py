"""The console provider (``SMS_PROVIDER=console``): logs each message instead of sending it, for development."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Mapping

from django.conf import settings

from .base import ConnectionCheck, InboundEvent, SendRequest, SendResult, StatusEvent, WebhookRejected
from .segments import segment_count
from .twilio import parse_twilio_params

logger = logging.getLogger(__name__)


class ConsoleProvider:
    name = "console"

    def send(self, request: SendRequest) -> SendResult:
        sid = "SM" + secrets.token_hex(16)
        segments = segment_count(request.body)
        # The message itself, never a credential (the console provider holds none).
        logger.info(
            "SMS %s from %s to %s (%d segment(s)): %s", sid, request.sender.value, request.to, segments, request.body
        )
        return SendResult(sid=sid, status="sent", segments=segments)

    async def send_async(self, request: SendRequest) -> SendResult:
        return self.send(request)

    def check_connection(self) -> ConnectionCheck:
        return ConnectionCheck(ok=True, message="The console provider logs messages instead of sending them.")

    def fetch_status(self, message_sid: str) -> None:
        return None  # nothing was sent, so there is nothing to ask

    def find_sent(self, *, to: str, sent_after: dt.datetime) -> None:
        return None

    def parse_webhook(
        self, *, url: str, params: Mapping[str, str], headers: Mapping[str, str]
    ) -> InboundEvent | StatusEvent:
        # Nothing signs for the console; accept simulated callbacks only in development.
        if not settings.DEBUG:
            raise WebhookRejected(403, "The console provider accepts callbacks only with DEBUG on.")
        return parse_twilio_params(params, account_sid="")
