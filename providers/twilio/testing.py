"""For the suite: Twilio webhook payloads as Twilio posts them (every field), signed with the ``twilio`` package's
validator, and the pytest fixtures that point the app at a ``fake_twilio`` (``tests/conftest.py`` re-exports them)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
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
    # Status callbacks applied in the request: the path replies, Redis outages and the embedded defaults take, and
    # what the buffer's flusher must match. The buffer itself: test_status_buffer*.py (which switch it back on).
    settings.SMS_STATUS_BUFFER = False


# Fixtures


def fake_twilio_credentials() -> dict[str, str]:
    # A fresh token per test, so that a test looking for it in logs and pages cannot be fooled by a constant.
    return {"account_sid": "AC" + secrets.token_hex(16), "auth_token": secrets.token_hex(16)}


@pytest.fixture
def fake_twilio() -> Iterator[Any]:
    """An in-process ``FakeTwilio`` on a free port: ``.base_url``, ``.account_sid``, ``.auth_token``,
    ``.messages()``, ``.control(...)``, ``.send_inbound(...)``, ``.status_callbacks_sent()``."""
    from .fake_twilio import FakeTwilio

    credentials = fake_twilio_credentials()
    server = FakeTwilio(
        account_sid=credentials["account_sid"], auth_token=credentials["auth_token"], callback_delay_ms=5
    ).start()
    yield server
    server.stop()


@pytest.fixture
def twilio_settings(settings: Any, fake_twilio: Any) -> Any:
    """Point the app at ``fake_twilio`` through the environment-level settings (which win over the plugin page)."""
    settings.SMS_PROVIDER = "twilio"
    settings.TWILIO_ACCOUNT_SID = fake_twilio.account_sid
    settings.TWILIO_AUTH_TOKEN = fake_twilio.auth_token
    settings.TWILIO_API_KEY_SID = ""
    settings.TWILIO_API_KEY_SECRET = ""
    settings.TWILIO_API_BASE_URL = fake_twilio.base_url
    settings.TWILIO_FROM = "+15005550006"
    settings.TWILIO_MESSAGING_SERVICE_SID = ""
    settings.TWILIO_TIMEOUT_SECONDS = 5.0
    return settings
