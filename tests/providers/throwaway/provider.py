"""A provider that exists only for one test: it keeps what it "sends" in memory, speaks its own words (states
``got-it``, ``handset``, ``lost``; error ``E-STOP``; JSON-free form fields ``kind``, ``ref``, ``who``, ``words``) and
checks a shared key instead of a signature. Everything it needs is in this folder."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

from providers.base import (
    ConnectionCheck,
    DeliveryState,
    ErrorKind,
    InboundEvent,
    ProviderError,
    ProviderMessage,
    Sender,
    SenderConfig,
    SendRequest,
    SendResult,
    StatusEvent,
    WebhookRejected,
)

KEY = "throwaway-shared-key"
NUMBER = "+15005550199"
STATES = {"got-it": DeliveryState.ACCEPTED, "handset": DeliveryState.DELIVERED, "lost": DeliveryState.UNDELIVERED}
ERRORS = {"E-STOP": "The person asked this provider to stop their messages."}


@dataclass(frozen=True)
class ThrowawaySettings:
    senders: tuple[SenderConfig, ...] = (SenderConfig(Sender("number", NUMBER), 100.0),)
    status_callback_url: str | None = None
    help_text: str = "Throwaway help: reply STOP to stop."


@dataclass
class ThrowawayProvider:
    name: str = "throwaway"
    label: str = "Throwaway"
    config: ThrowawaySettings = field(default_factory=ThrowawaySettings)
    outbox: list[SendRequest] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)  # id -> its own state word, as fetch_status tells it
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def send(self, request: SendRequest) -> SendResult:
        self.outbox.append(request)
        sid = f"TW-{next(self.counter)}"
        self.states[sid] = "got-it"
        return SendResult(sid=sid, status="got-it", segments=1)

    async def send_async(self, request: SendRequest) -> SendResult:
        return self.send(request)

    def check_connection(self) -> ConnectionCheck:
        return ConnectionCheck(ok=True, message="Throwaway is always there.")

    def fetch_status(self, message_sid: str) -> StatusEvent:
        if message_sid not in self.states:
            raise ProviderError(ErrorKind.NOT_FOUND, "E-NONE", "No such message.")
        return StatusEvent(message_sid=message_sid, status=STATES[self.states[message_sid]], provider=self.name)

    def find_sent(self, *, to: str, sent_after: dt.datetime, channel: str = "sms") -> list[ProviderMessage]:
        return []

    def parse_webhook(
        self, *, url: str, params: Mapping[str, str], headers: Mapping[str, str]
    ) -> InboundEvent | StatusEvent:
        if {k.lower(): v for k, v in headers.items()}.get("x-throwaway-key") != KEY:
            raise WebhookRejected(403, "Wrong key.")
        ref = params.get("ref") or ""
        if params.get("kind") == "status":
            return StatusEvent(
                message_sid=ref,
                status=STATES.get(params.get("state", ""), params.get("state", "")),
                error_code=params.get("error", ""),
                provider=self.name,
            )
        return InboundEvent(
            message_sid=ref,
            account_sid="throwaway",
            from_number=params.get("who") or "",
            to_number=NUMBER,
            body=params.get("words") or "",
            provider=self.name,
        )

    def explain(self, code: str) -> str:
        return ERRORS.get(code, "")

    def error_kind(self, code: str) -> ErrorKind | None:
        return ErrorKind.OPT_OUT if code == "E-STOP" else None

    def sender_reaches(self, sender: Sender, country: str) -> bool:
        return True


PROVIDER = ThrowawayProvider()
