"""The provider interface: what the rest of the product knows of an SMS transport.

It knows nothing of contacts or campaigns: it sends a body to a number, checks a connection, turns a signed
webhook into inbound-message and status events, and answers what became of a message whose callback never came.
Providers are chosen by the ``SMS_PROVIDER`` setting, like Django's email backends.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol


class ErrorKind(enum.StrEnum):
    PERMANENT = "permanent"  # will fail again: invalid number, bad content; fail the message at once
    TRANSIENT = "transient"  # may work later: 429, 5xx, timeouts; retry with backoff
    OPT_OUT = "opt_out"  # the recipient unsubscribed at the carrier (Twilio 21610): fail and mark DNC
    AUTH = "auth"  # bad credentials (Twilio 20003): fail, and tell the admin


class ProviderError(Exception):
    """A send or check that the provider refused or that could not reach it.

    ``code`` is the provider's error code (Twilio's numeric code as a string) or a local one (``timeout``,
    ``connection``); ``message`` is the provider's text, safe to show a marketer (never contains credentials).
    ``may_have_sent`` is true when the request may have reached the provider (a timeout after sending): such a
    message must not be resent automatically.
    """

    def __init__(
        self, kind: ErrorKind, code: str, message: str, *, status: int | None = None, may_have_sent: bool = False
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.kind = kind
        self.code = code
        self.message = message
        self.status = status
        self.may_have_sent = may_have_sent


@dataclass(frozen=True)
class Sender:
    """Who a message comes from: a number (E.164), a Messaging Service SID (``MG…``) or an alphanumeric ID."""

    kind: str  # "number" | "messaging_service" | "alphanumeric"
    value: str

    @property
    def can_receive_replies(self) -> bool:
        return self.kind != "alphanumeric"


@dataclass(frozen=True)
class SendRequest:
    to: str  # E.164
    body: str
    sender: Sender
    media_urls: Sequence[str] = ()
    status_callback: str | None = None


@dataclass(frozen=True)
class SendResult:
    sid: str
    status: str  # the provider's status at acceptance: "queued", "accepted", "sent", ...
    segments: int | None = None
    price: Decimal | None = None
    price_unit: str = ""


@dataclass(frozen=True)
class ConnectionCheck:
    ok: bool
    message: str  # "Connected to account <friendly name>" or the provider's exact reason
    account_name: str = ""


@dataclass(frozen=True)
class InboundEvent:
    message_sid: str
    account_sid: str
    from_number: str
    to_number: str
    body: str
    media_urls: tuple[str, ...] = ()
    from_country: str = ""
    opt_out_type: str = ""  # Twilio Advanced Opt-Out: "STOP", "START", "HELP" or ""
    raw: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StatusEvent:
    message_sid: str
    status: str
    error_code: str = ""
    to_number: str = ""
    raw: Mapping[str, str] = field(default_factory=dict)
    # What the provider charged, when it says (a fetch, not a callback: Twilio prices a message after it left).
    price: Decimal | None = None
    price_unit: str = ""


# ``find_sent`` answers at most this many messages (newest first): a full answer may not be all there is.
FIND_SENT_LIMIT = 50


@dataclass(frozen=True)
class ProviderMessage:
    """A message as the provider lists it (to find one whose SID was never written)."""

    sid: str
    status: str
    error_code: str
    to: str
    body: str


class WebhookRejected(Exception):
    """A webhook that must not be processed. ``status`` is 403 (bad signature) or 400 (malformed)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Provider(Protocol):
    name: str

    def send(self, request: SendRequest) -> SendResult:
        """Send one message. Raises ``ProviderError``."""
        ...

    async def send_async(self, request: SendRequest) -> SendResult:
        """``send`` as a coroutine, run on the worker's event loop (``providers.aio``) with many others in flight.
        Raises ``ProviderError``."""
        ...

    def check_connection(self) -> ConnectionCheck: ...

    def fetch_status(self, message_sid: str) -> StatusEvent | None:
        """The message's status as the provider knows it now, for a status callback that never arrived; None when
        this provider cannot be asked. Raises ``ProviderError`` (``code`` ``20404``: no such message)."""
        ...

    def find_sent(self, *, to: str, sent_after: dt.datetime) -> list[ProviderMessage] | None:
        """The messages the provider sent to ``to`` since ``sent_after`` (newest first, at most FIND_SENT_LIMIT); None
        when this provider cannot be asked. Raises ``ProviderError``."""
        ...

    def parse_webhook(
        self, *, url: str, params: Mapping[str, str], headers: Mapping[str, str]
    ) -> InboundEvent | StatusEvent:
        """Verify the signature (raise ``WebhookRejected(403)``) and parse (raise ``WebhookRejected(400)``)."""
        ...
