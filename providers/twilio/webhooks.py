"""Twilio's webhooks in the product's words: its form fields parsed into neutral events, its status names mapped to
delivery states, and the TwiML that answers (built with the ``twilio`` package)."""

from __future__ import annotations

from collections.abc import Mapping

from django.http import HttpResponse
from twilio.twiml.messaging_response import MessagingResponse

from ..base import MESSENGER, SMS, WHATSAPP, DeliveryState, InboundEvent, Media, StatusEvent, WebhookRejected

# How Twilio writes an address on each channel: "whatsapp:+14155550123", "messenger:1234567890"; SMS is bare.
CHANNEL_PREFIX: dict[str, str] = {WHATSAPP: "whatsapp:", MESSENGER: "messenger:"}


def twilio_address(channel: str, address: str) -> str:
    """A bare address (E.164, a Messenger ID) as Twilio's ``To``/``From`` on ``channel``."""
    prefix = CHANNEL_PREFIX.get(channel, "")
    return address if not prefix or address.startswith(prefix) else prefix + address


def split_address(value: str) -> tuple[str, str]:
    """Twilio's ``From``/``To`` -> (channel, bare address)."""
    for channel, prefix in CHANNEL_PREFIX.items():
        if value[: len(prefix)].lower() == prefix:
            return channel, value[len(prefix) :].strip()
    return SMS, value


# Every status Twilio posts -> a delivery state. Twilio's early statuses (accepted, scheduled, queued, sending) all
# mean "Twilio has it"; `read` is a delivery (WhatsApp/RCS), `canceled` a scheduled message that never left.
TWILIO_STATES: dict[str, DeliveryState] = {
    "accepted": DeliveryState.ACCEPTED,
    "scheduled": DeliveryState.ACCEPTED,
    "queued": DeliveryState.ACCEPTED,
    "sending": DeliveryState.ACCEPTED,
    "sent": DeliveryState.SENT,
    "delivered": DeliveryState.DELIVERED,
    "read": DeliveryState.READ,
    "partially_delivered": DeliveryState.DELIVERED,
    "undelivered": DeliveryState.UNDELIVERED,
    "failed": DeliveryState.FAILED,
    "canceled": DeliveryState.FAILED,
}

# The events' attributes as Twilio names the fields, so that a refusal names what Twilio sent.
FIELD_NAMES: Mapping[str, str] = {
    "message_sid": "MessageSid",
    "account_sid": "AccountSid",
    "from_number": "From",
    "to_number": "To",
    "from_country": "FromCountry",
    "opt_out_type": "OptOutType",
    "error_code": "ErrorCode",
    "profile_name": "ProfileName",
    "button_text": "ButtonText",
    "button_payload": "ButtonPayload",
}


def delivery_state(status: str) -> str:
    """Twilio's status as a delivery state; a status Twilio adds one day passes through as it is (and is ignored)."""
    return str(TWILIO_STATES.get(status.lower(), status))


def parse_twilio_params(params: Mapping[str, str], *, account_sid: str) -> InboundEvent | StatusEvent:
    """Twilio's form fields -> an event; ``WebhookRejected(400)`` for a malformed or foreign payload."""
    get = params.get
    raw = {k: str(get(k) or "") for k in params}
    # Twilio never sends a NUL character, and PostgreSQL cannot store one (text or jsonb): found by the fuzz test.
    if any("\x00" in k or "\x00" in v for k, v in raw.items()):
        raise WebhookRejected(400, "A field contains a NUL character.")
    sid = str(get("MessageSid") or get("SmsSid") or "")
    status = str(get("MessageStatus") or get("SmsStatus") or "").lower()
    their_account = str(get("AccountSid") or "")
    if their_account and account_sid and their_account != account_sid:
        raise WebhookRejected(400, "AccountSid is not this account's.")
    if status and status != "received":
        if not sid:
            raise WebhookRejected(400, "A status callback needs MessageSid.")
        return StatusEvent(
            message_sid=sid,
            status=delivery_state(status),
            error_code=str(get("ErrorCode") or ""),
            to_number=split_address(str(get("To") or ""))[1],
            raw=raw,
            provider="twilio",
            field_names=FIELD_NAMES,
        )
    missing = [
        name for name, value in (("MessageSid", sid), ("From", get("From")), ("AccountSid", their_account)) if not value
    ]
    if missing:
        raise WebhookRejected(400, f"An inbound message needs {', '.join(missing)}.")
    try:
        count = int(get("NumMedia") or 0)
    except ValueError:
        raise WebhookRejected(400, "NumMedia is not a number.") from None
    media = tuple(
        Media(url=str(get(f"MediaUrl{i}")), content_type=str(get(f"MediaContentType{i}") or ""))
        for i in range(min(count, 10))
        if get(f"MediaUrl{i}")
    )
    channel, from_address = split_address(str(get("From")))
    if not from_address:
        raise WebhookRejected(400, "From has a channel but no address.")
    return InboundEvent(
        message_sid=sid,
        account_sid=their_account,
        from_number=from_address,
        to_number=split_address(str(get("To") or ""))[1],
        body=str(get("Body") or ""),
        media=media,
        from_country=str(get("FromCountry") or ""),
        # Twilio's Advanced Opt-Out: Twilio itself answered STOP, START or HELP.
        opt_out_type=str(get("OptOutType") or "").upper(),
        raw=raw,
        provider="twilio",
        channel=channel,
        field_names=FIELD_NAMES,
        profile_name=str(get("ProfileName") or ""),
        button_text=str(get("ButtonText") or ""),
        button_payload=str(get("ButtonPayload") or ""),
    )


# Most answers (every status callback, most replies) are the empty <Response/>: built once.
EMPTY_TWIML = str(MessagingResponse())


def twiml(reply: str = "") -> HttpResponse:
    """``<Response/>``, or one ``<Message>`` with the reply."""
    if not reply:
        return HttpResponse(EMPTY_TWIML, content_type="application/xml")
    response = MessagingResponse()
    response.message(reply)
    return HttpResponse(str(response), content_type="application/xml")
