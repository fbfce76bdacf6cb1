"""Twilio webhook payloads as Twilio posts them (every field), signed with the ``twilio`` package's validator."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.test import Client
from twilio.request_validator import RequestValidator

PATH = "/sms/twilio/callback"
ACCOUNT_SID = "AC" + "c0ffee00" * 4
AUTH_TOKEN = "5ec7e7" + "ab" * 13  # a test value, not a secret
OUR_NUMBER = "+15005550006"


def sid(prefix: str = "SM") -> str:
    return prefix + secrets.token_hex(16)


def inbound_params(
    body: str,
    *,
    from_: str = "+14155550123",
    to: str = OUR_NUMBER,
    message_sid: str | None = None,
    media: list[tuple[str, str]] | None = None,
    from_country: str = "US",
    account_sid: str = ACCOUNT_SID,
    **extra: str,
) -> dict[str, str]:
    """An incoming SMS/MMS webhook with all the fields Twilio sends."""
    message_sid = message_sid or sid("MM" if media else "SM")
    params = {
        "ToCountry": "US",
        "ToState": "CA",
        "SmsMessageSid": message_sid,
        "NumMedia": str(len(media or [])),
        "ToCity": "SAN FRANCISCO",
        "FromZip": "94105",
        "SmsSid": message_sid,
        "FromState": "CA",
        "SmsStatus": "received",
        "FromCity": "SAN FRANCISCO",
        "Body": body,
        "FromCountry": from_country,
        "To": to,
        "MessagingServiceSid": "",
        "ToZip": "94105",
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": message_sid,
        "AccountSid": account_sid,
        "From": from_,
        "ApiVersion": "2010-04-01",
    }
    for i, (url, content_type) in enumerate(media or []):
        params[f"MediaUrl{i}"] = url
        params[f"MediaContentType{i}"] = content_type
    params.update(extra)
    return params


def status_params(
    message_sid: str, status: str, *, to: str = "+14155550123", error_code: str = "", **extra: str
) -> dict[str, str]:
    """A status callback with the fields Twilio sends."""
    params = {
        "SmsSid": message_sid,
        "SmsStatus": status,
        "MessageStatus": status,
        "To": to,
        "MessageSid": message_sid,
        "AccountSid": ACCOUNT_SID,
        "From": OUR_NUMBER,
        "ApiVersion": "2010-04-01",
        "ChannelToAddress": to[:-4] + "XXXX",
        "ChannelPrefix": "sms",
        "ChannelInstallSid": "",
        "ChannelStatusMessage": "",
        "StructuredMessage": "false",
    }
    if status == "delivered":
        params["RawDlrDoneDate"] = "2511231200"
    if error_code:
        params["ErrorCode"] = error_code
    params.update(extra)
    return params


def sign(params: dict[str, str], *, url: str | None = None, token: str = AUTH_TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url or settings.PUBLIC_BASE_URL + PATH, params))


def post(client: Client, params: dict[str, str], *, signature: str | None = None, **headers: Any) -> Any:
    signature = sign(params) if signature is None else signature
    if signature:
        headers["HTTP_X_TWILIO_SIGNATURE"] = signature
    return client.post(PATH, data=params, **headers)


def configure(settings: Any) -> None:
    settings.SMS_PROVIDER = "twilio"
    settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = AUTH_TOKEN
    settings.TWILIO_API_KEY_SID = ""
    settings.TWILIO_API_KEY_SECRET = ""
    settings.TWILIO_FROM = OUR_NUMBER
    settings.TWILIO_MESSAGING_SERVICE_SID = ""
    settings.SMS_CALLBACK_SKIP_SIGNATURE = False
