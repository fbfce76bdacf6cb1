"""The console provider: logs each message instead of sending it, from a sender of its own, for development."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings

from ..base import (
    ConnectionCheck,
    ErrorKind,
    InboundEvent,
    Sender,
    SenderConfig,
    SendRequest,
    SendResult,
    StatusEvent,
    WebhookRejected,
)
from ..segments import segment_count

logger = logging.getLogger(__name__)

CONSOLE_NUMBER = "+15005550006"


@dataclass(frozen=True)
class ConsoleSettings:
    senders: tuple[SenderConfig, ...] = (SenderConfig(Sender("number", CONSOLE_NUMBER), 100.0, "console"),)
    status_callback_url: str | None = None
    help_text: str = "Reply STOP to unsubscribe. This is the console provider: nothing was sent."


class ConsoleProvider:
    name = "console"
    label = "Console"
    config = ConsoleSettings()

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

    def find_sent(self, *, to: str, sent_after: dt.datetime, channel: str = "sms") -> None:
        return None

    def parse_webhook(
        self, *, url: str, params: Mapping[str, str], headers: Mapping[str, str]
    ) -> InboundEvent | StatusEvent:
        """``id`` and ``from`` (and ``to``, ``body``) for a reply; ``id`` and ``status`` (a delivery state) for a
        status. Nothing signs for the console, so only with DEBUG on."""
        if not settings.DEBUG:
            raise WebhookRejected(403, "The console provider accepts callbacks only with DEBUG on.")
        sid = params.get("id") or ""
        if not sid:
            raise WebhookRejected(400, "A console callback needs id.")
        if params.get("status"):
            return StatusEvent(message_sid=sid, status=params["status"], provider=self.name)
        if not params.get("from"):
            raise WebhookRejected(400, "A console reply needs from.")
        return InboundEvent(
            message_sid=sid,
            account_sid="console",
            from_number=params["from"],
            to_number=params.get("to") or CONSOLE_NUMBER,
            body=params.get("body") or "",
            provider=self.name,
        )

    def explain(self, code: str) -> str:
        return ""

    def error_kind(self, code: str) -> ErrorKind | None:
        return None

    def sender_reaches(self, sender: Sender, country: str) -> bool:
        return True
