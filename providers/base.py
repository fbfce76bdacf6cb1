"""The provider interface: the words the rest of the product speaks about a transport, whichever provider it is.

It knows nothing of contacts or campaigns: a provider sends a body to an address, checks a connection, turns its
signed webhooks into neutral events (``InboundEvent``, ``StatusEvent``), answers what became of a message whose
callback never came, and says in a marketer's words what its error codes mean (``explain``). Each provider lives in
a folder of its own (``providers/<name>/``) and registers itself (``providers.registry``); nothing outside that folder
names it. ``SMS_PROVIDER`` chooses the one that sends, like Django's email backends.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol


class DeliveryState(enum.StrEnum):
    """What a provider says became of a message, in the product's words (``texts`` maps them to its statuses).

    A provider translates its own names: its "queued", "scheduled" or "sending" are all ``accepted``.
    """

    ACCEPTED = "accepted"  # the provider has it and has not handed it to a carrier yet
    SENT = "sent"  # handed to the carrier
    DELIVERED = "delivered"  # the handset has it
    READ = "read"  # opened (WhatsApp, RCS): a delivery
    UNDELIVERED = "undelivered"  # the carrier gave up
    FAILED = "failed"  # never left the provider (refused, cancelled)


class ErrorKind(enum.StrEnum):
    PERMANENT = "permanent"  # will fail again: invalid number, bad content; fail the message at once
    TRANSIENT = "transient"  # may work later: 429, 5xx, timeouts; retry with backoff
    OPT_OUT = "opt_out"  # the recipient unsubscribed at the carrier or the provider: fail and mark Do Not Contact
    AUTH = "auth"  # bad credentials: fail, and tell the admin
    NOT_FOUND = "not_found"  # the provider has no such message (a fetch by an unknown id)
    # The address itself cannot receive: not a mobile, unknown, a landline, invalid. Permanent for the message; the
    # product counts these per address and suppresses it after ``SMS_BAD_ADDRESS_FAILURES`` (a "bounce").
    BAD_ADDRESS = "bad_address"


class ProviderError(Exception):
    """A send or check that the provider refused or that could not reach it.

    ``code`` is the provider's error code (as a string) or a local one (``timeout``, ``connection``); ``message`` is
    the provider's text, safe to show a marketer (never contains credentials). ``may_have_sent`` is true when the
    request may have reached the provider (a timeout after sending): such a message must not be resent automatically.
    ``throttled``: the provider refused the request for coming too fast (HTTP 429), without looking at the message.
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

    @property
    def throttled(self) -> bool:
        return self.status == 429


@dataclass(frozen=True)
class Sender:
    """Who a message comes from: a number (E.164 or a short code), a messaging service or an alphanumeric ID."""

    kind: str  # "number" | "messaging_service" | "alphanumeric"
    value: str

    @property
    def can_receive_replies(self) -> bool:
        return self.kind != "alphanumeric"


@dataclass(frozen=True)
class SenderConfig:
    """One sender and its limit in messages (segments) per second."""

    sender: Sender
    rate_per_second: float
    friendly_name: str = ""
    number_type: str = ""

    @property
    def key(self) -> str:
        """The rate limiter's key for this sender."""
        return f"{self.sender.kind}:{self.sender.value}"


class ProviderConfig(Protocol):
    """What the sending engine and the keyword pages read of a provider's configuration."""

    @property
    def senders(self) -> Sequence[SenderConfig]: ...

    @property
    def status_callback_url(self) -> str | None: ...

    @property
    def help_text(self) -> str: ...


# The channels a provider may carry (``contacts.models.Channel`` names them for the product).
SMS, WHATSAPP, MESSENGER = "sms", "whatsapp", "messenger"


@dataclass(frozen=True)
class SendRequest:
    """One message to send. ``to`` is the bare address on ``channel`` (E.164, or a Messenger ID) and the sender's
    value is bare too: the provider writes them as its API wants them (e.g. ``whatsapp:+E164``). A ``body`` (with
    ``media_urls``), or a provider's template by its ``content_sid`` with the values of its variables for this
    recipient (``content_variables``, rendered), and then no body."""

    to: str
    body: str
    sender: Sender
    media_urls: Sequence[str] = ()
    status_callback: str | None = None
    channel: str = SMS
    content_sid: str = ""
    content_variables: Mapping[str, str] = field(default_factory=dict)


def senders_for(config: ProviderConfig, channel: str) -> Sequence[SenderConfig]:
    """The senders that may send on ``channel``: a provider's ``senders`` are its SMS senders; one that carries other
    channels says which of its senders serve them (``senders_for(channel)``)."""
    own = getattr(config, "senders_for", None)
    if own is not None:
        return tuple(own(channel))
    return tuple(config.senders) if channel == SMS else ()


def every_sender(config: ProviderConfig) -> list[SenderConfig]:
    """Each distinct sender on any channel (the pacer serves each one's line)."""
    seen: dict[str, SenderConfig] = {}
    for channel in (SMS, WHATSAPP, MESSENGER):
        for sender_config in senders_for(config, channel):
            seen.setdefault(sender_config.sender.value, sender_config)
    return list(seen.values())


# WhatsApp's limit on the value of one template variable.
TEMPLATE_VARIABLE_MAX_CHARACTERS = 1024
_PLACEHOLDER_RE = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


@dataclass(frozen=True)
class MessageTemplate:
    """A message template the provider keeps (sent by its id with values for its variables), as its last sync saw it.

    ``variables`` maps each variable's name (``"1"``) to the provider's sample value; ``body`` is what the recipient
    reads, with ``{{1}}`` placeholders; ``types`` the provider's own content type names; ``approval`` the
    WhatsApp approval status ("approved", "pending", "rejected", "unsubmitted"…, "" when never asked); ``removed``:
    the provider no longer has it (a message using it cannot be sent).
    """

    sid: str
    name: str
    language: str
    types: tuple[str, ...]
    variables: Mapping[str, str]
    body: str = ""
    media_urls: tuple[str, ...] = ()
    approval: str = ""
    removed: bool = False

    def render(self, values: Mapping[str, str]) -> str:
        """The body as a recipient reads it with these values (a missing one: the sample value)."""

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            return values.get(name) or self.variables.get(name, "") or match.group(0)

        return _PLACEHOLDER_RE.sub(replace, self.body)


class TemplateSource(Protocol):
    """A provider that sends templates by id. Optional: ``providers.registry.templates`` asks the one that sends."""

    def templates(self) -> Sequence[MessageTemplate]:
        """The templates as last synced (removed ones left out), by name."""
        ...

    def template(self, sid: str) -> MessageTemplate | None:
        """One template by its id, removed or not; None when the provider never had it."""
        ...


@dataclass(frozen=True)
class SendResult:
    sid: str
    status: str  # the provider's own status at acceptance ("queued", "accepted", ...), for its logs
    segments: int | None = None
    price: Decimal | None = None
    price_unit: str = ""


@dataclass(frozen=True)
class ConnectionCheck:
    ok: bool
    message: str  # "Connected to account <friendly name>" or the provider's exact reason
    account_name: str = ""


@dataclass(frozen=True)
class Media:
    """One attachment of an inbound message: where the provider serves it, and what it is."""

    url: str
    content_type: str = ""


@dataclass(frozen=True)
class InboundEvent:
    """A message a person sent us. ``field_names`` maps these attributes to the provider's own field names, so that
    a refusal names the field the provider sent (``MessageSid is 72 characters…``)."""

    message_sid: str
    account_sid: str
    from_number: str
    to_number: str
    body: str
    media: tuple[Media, ...] = ()
    from_country: str = ""
    opt_out_type: str = ""  # a keyword the provider answered itself ("STOP", "START", "HELP"), or ""
    raw: Mapping[str, str] = field(default_factory=dict)
    provider: str = ""  # the registered name of the provider that received it ("": the configured one)
    channel: str = SMS  # ``from_number`` is the bare address on it (E.164, a Messenger ID)
    field_names: Mapping[str, str] = field(default_factory=dict)
    profile_name: str = ""  # the display name a chat app shows (WhatsApp, Messenger)
    button_text: str = ""  # a quick-reply button's label, when the message is a tap on one
    button_payload: str = ""  # and its payload

    @property
    def media_urls(self) -> tuple[str, ...]:
        return tuple(m.url for m in self.media)


@dataclass(frozen=True)
class StatusEvent:
    """A delivery status of a message we sent. ``status`` is a ``DeliveryState`` value, or the provider's own word
    when it has none (logged and ignored); ``error_code`` is the provider's, explained by its ``explain``."""

    message_sid: str
    status: str
    error_code: str = ""
    to_number: str = ""
    raw: Mapping[str, str] = field(default_factory=dict)
    provider: str = ""  # the registered name of the provider that reported it ("": the configured one)
    field_names: Mapping[str, str] = field(default_factory=dict)
    # What the provider charged, when it says (a fetch more than a callback: some price a message after it left).
    price: Decimal | None = None
    price_unit: str = ""


# ``find_sent`` answers at most this many messages (newest first): a full answer may not be all there is.
FIND_SENT_LIMIT = 50


@dataclass(frozen=True)
class ProviderMessage:
    """A message as the provider lists it (to find one whose SID was never written); ``status`` as in StatusEvent."""

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


# The status callback URL handed to the provider names our message (``?m=<id>``), so a callback that overtakes the
# worker's write of the provider's id still finds the message. Both ends of that convention are here.
CALLBACK_MESSAGE_PARAM = "m"


def callback_url_for(callback: str | None, message_id: int) -> str | None:
    """``callback`` with the message's id in its query; None without a callback."""
    if not callback:
        return None
    return f"{callback}{'&' if '?' in callback else '?'}{CALLBACK_MESSAGE_PARAM}={message_id}"


def callback_message_id(query: Mapping[str, str]) -> int | None:
    """The message id a status callback's URL carries, if it is a sane one."""
    hint = str(query.get(CALLBACK_MESSAGE_PARAM, ""))
    return int(hint) if hint.isdigit() and len(hint) < 19 else None


class Provider(Protocol):
    name: str  # the registered name (``providers.registry``), as the outbound log records it
    label: str  # as a marketer reads it

    @property
    def config(self) -> ProviderConfig: ...

    def send(self, request: SendRequest) -> SendResult:
        """Send one message. Raises ``ProviderError``."""
        ...

    async def send_async(self, request: SendRequest) -> SendResult:
        """``send`` as a coroutine, run on the worker's event loop (``providers.aio``) with many others in flight.
        Raises ``ProviderError``."""
        ...

    def check_connection(self) -> ConnectionCheck: ...

    def fetch_status(self, message_sid: str) -> StatusEvent | None:
        """The message's status as the provider knows it now, for a status callback that never arrived, with its
        price and currency (``price``, ``price_unit``) once the provider tells them (reconciliation stores them);
        None when this provider cannot be asked. Raises ``ProviderError`` (``ErrorKind.NOT_FOUND``: no such
        message)."""
        ...

    def find_sent(self, *, to: str, sent_after: dt.datetime, channel: str = "sms") -> list[ProviderMessage] | None:
        """The messages the provider sent to ``to`` (the bare address on ``channel``, as in ``SendRequest``) since
        ``sent_after`` (newest first, at most FIND_SENT_LIMIT); None when this provider cannot be asked. Raises
        ``ProviderError``."""
        ...

    def parse_webhook(
        self, *, url: str, params: Mapping[str, str], headers: Mapping[str, str]
    ) -> InboundEvent | StatusEvent:
        """Verify the signature (raise ``WebhookRejected(403)``) and parse (raise ``WebhookRejected(400)``)."""
        ...

    def explain(self, code: str) -> str:
        """The provider's error code in words a marketer reads; "" for a code it does not know."""
        ...

    def error_kind(self, code: str) -> ErrorKind | None:
        """What an error code of a status callback means for the recipient (``OPT_OUT``, ``BAD_ADDRESS``…); None if
        unknown."""
        ...

    def sender_reaches(self, sender: Sender, country: str) -> bool:
        """Whether this sender can text a number in ``country`` (ISO code) through this provider."""
        ...
