"""The Twilio provider: the real ``twilio`` client sends through ``fake_twilio`` over HTTP."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.test import RequestFactory

from providers.base import ErrorKind, InboundEvent, ProviderError, Sender, SendRequest, StatusEvent, WebhookRejected
from providers.registry import get_provider
from providers.twilio.config import get_config
from providers.twilio.provider import TwilioProvider
from smsapp.testing.services import free_port

pytestmark = pytest.mark.django_db

TO = "+14155552671"
FROM = Sender("number", "+15005550006")


_MODE = {"client": "sync"}


@pytest.fixture(autouse=True, params=["sync", "async"])
def client_mode(request: pytest.FixtureRequest) -> Any:
    """Every send test runs on both of the package's clients: the REST client (requests) and the asynchronous one
    (aiohttp, on the worker's event loop), which must answer and fail in the same words."""
    _MODE["client"] = request.param
    yield request.param
    _MODE["client"] = "sync"


def _send(to: str = TO, body: str = "Hello", **kwargs: Any) -> Any:
    request = SendRequest(to=to, body=body, sender=FROM, **kwargs)
    if _MODE["client"] == "async":
        from providers import aio

        return aio.run(get_provider().send_async(request), timeout=30)
    return get_provider().send(request)


def _error(to: str = TO, **kwargs: Any) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        _send(to, **kwargs)
    return info.value


def test_send_succeeds_through_the_real_client(twilio_settings: Any, fake_twilio: Any) -> None:
    result = _send(body="Hello from smsapp", media_urls=["https://example.com/a.png"])

    assert result.sid.startswith("MM")
    assert len(result.sid) == 34
    assert result.status == "queued"
    assert result.segments == 1
    [message] = fake_twilio.messages()
    assert message["sid"] == result.sid
    assert (message["to"], message["from"], message["body"]) == (TO, FROM.value, "Hello from smsapp")
    assert message["media_urls"] == ["https://example.com/a.png"]


def test_send_asks_for_status_callbacks_and_they_arrive_signed(twilio_settings: Any, fake_twilio: Any) -> None:
    rf = RequestFactory()
    provider = get_provider()
    # Nothing listens at the public URL in this test; the callbacks fail to arrive but are recorded with params.
    result = _send(status_callback="http://127.0.0.1:9/sms/twilio/callback")
    callbacks = fake_twilio.wait_for_callbacks(3)
    assert [c["params"]["MessageStatus"] for c in callbacks] == ["queued", "sent", "delivered"]
    for callback in callbacks:
        assert callback["params"]["MessageSid"] == result.sid
        headers = fake_twilio.sign(callback["url"], callback["params"])
        request = rf.post("/sms/twilio/callback", callback["params"])
        event = provider.parse_webhook(url=callback["url"], params=request.POST, headers=headers)
        assert isinstance(event, StatusEvent)
        assert event.message_sid == result.sid


def test_status_callback_defaults_to_the_public_callback_url(twilio_settings: Any, fake_twilio: Any) -> None:
    twilio_settings.PUBLIC_BASE_URL = "https://sms.example.com"
    _send()
    assert fake_twilio.messages()[0]["status_callback"] == "https://sms.example.com/sms/twilio/callback"


def test_undeliverable_number_ends_undelivered_with_its_error_code(twilio_settings: Any, fake_twilio: Any) -> None:
    fake_twilio.control(undeliverable={TO: 30005})
    _send(status_callback="http://127.0.0.1:9/cb")
    callbacks = fake_twilio.wait_for_callbacks(3)
    assert callbacks[-1]["params"]["MessageStatus"] == "undelivered"
    assert callbacks[-1]["params"]["ErrorCode"] == "30005"


def test_invalid_number_is_a_bad_address_21211(twilio_settings: Any, fake_twilio: Any) -> None:
    error = _error("+1555")
    assert (error.kind, error.code, error.status) == (ErrorKind.BAD_ADDRESS, "21211", 400)
    assert "Invalid 'To' Phone Number" in error.message
    assert fake_twilio.messages() == []


def test_landline_is_a_bad_address_21614(twilio_settings: Any, fake_twilio: Any) -> None:
    fake_twilio.control(landlines=[TO])
    error = _error()
    assert (error.kind, error.code) == (ErrorKind.BAD_ADDRESS, "21614")


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("30005", ErrorKind.BAD_ADDRESS),
        ("30006", ErrorKind.BAD_ADDRESS),
        ("21614", ErrorKind.BAD_ADDRESS),
        ("21211", ErrorKind.BAD_ADDRESS),
        ("30003", ErrorKind.PERMANENT),
        ("21610", ErrorKind.OPT_OUT),
        ("", None),
    ],
)
def test_status_callback_error_kinds(code: str, kind: ErrorKind | None) -> None:
    from providers import registry

    assert registry.error_kind(code, provider="twilio") == kind


def test_unsubscribed_recipient_is_an_opt_out_21610(twilio_settings: Any, fake_twilio: Any) -> None:
    fake_twilio.control(stopped=[TO])
    error = _error()
    assert (error.kind, error.code) == (ErrorKind.OPT_OUT, "21610")
    assert error.message == "Attempt to send to unsubscribed recipient"


def test_too_many_requests_is_transient_20429(twilio_settings: Any, fake_twilio: Any) -> None:
    fake_twilio.control(fail_429_rate=1.0)
    error = _error()
    assert (error.kind, error.code, error.status, error.may_have_sent) == (ErrorKind.TRANSIENT, "20429", 429, False)


def test_server_error_is_transient(twilio_settings: Any, fake_twilio: Any) -> None:
    fake_twilio.control(fail_500_rate=1.0)
    error = _error()
    assert (error.kind, error.code, error.status) == (ErrorKind.TRANSIENT, "20500", 500)


def test_service_down_503_is_transient(twilio_settings: Any, fake_twilio: Any) -> None:
    fake_twilio.control(down_seconds=30)
    error = _error()
    assert (error.kind, error.status) == (ErrorKind.TRANSIENT, 503)


def test_connection_refused_is_transient_and_not_sent(twilio_settings: Any) -> None:
    twilio_settings.TWILIO_API_BASE_URL = f"http://127.0.0.1:{free_port()}"
    error = _error()
    assert (error.kind, error.code, error.may_have_sent) == (ErrorKind.TRANSIENT, "connection", False)


def test_read_timeout_is_transient_and_may_have_sent(twilio_settings: Any, fake_twilio: Any) -> None:
    twilio_settings.TWILIO_TIMEOUT_SECONDS = 0.3
    fake_twilio.control(latency_ms=1500)
    error = _error()
    assert (error.kind, error.code, error.may_have_sent) == (ErrorKind.TRANSIENT, "timeout", True)


def test_bad_credentials_are_auth_20003_and_the_token_never_leaks(
    twilio_settings: Any, fake_twilio: Any, caplog: pytest.LogCaptureFixture
) -> None:
    wrong_token = "0badc0de" * 4
    twilio_settings.TWILIO_AUTH_TOKEN = wrong_token
    for name in ("", "twilio", "twilio.http_client", "urllib3", "requests", "providers"):
        caplog.set_level(logging.DEBUG, logger=name)

    error = _error()

    assert (error.kind, error.code, error.status) == (ErrorKind.AUTH, "20003", 401)
    assert caplog.records, "DEBUG logging captured nothing: the test would prove nothing"
    for secret in (wrong_token, fake_twilio.auth_token):
        assert secret not in caplog.text
        assert secret not in str(error)
        assert secret not in repr(error)
        assert secret not in error.message
        assert secret not in repr(get_config())


def test_api_key_credentials_work(twilio_settings: Any, fake_twilio: Any) -> None:
    fake_twilio.api_keys["SK" + "1" * 32] = "key-secret"
    twilio_settings.TWILIO_API_KEY_SID = "SK" + "1" * 32
    twilio_settings.TWILIO_API_KEY_SECRET = "key-secret"
    twilio_settings.TWILIO_AUTH_TOKEN = ""
    assert _send().sid.startswith("SM")


def test_messaging_service_sender(twilio_settings: Any, fake_twilio: Any) -> None:
    service = "MG" + "2" * 32
    result = get_provider().send(SendRequest(to=TO, body="Hi", sender=Sender("messaging_service", service)))
    assert result.status == "accepted"
    assert fake_twilio.messages()[0]["messaging_service_sid"] == service


def test_check_connection_good_and_bad(twilio_settings: Any, fake_twilio: Any) -> None:
    ok = get_provider().check_connection()
    assert ok.ok
    assert ok.account_name == "fake_twilio development account"

    twilio_settings.TWILIO_AUTH_TOKEN = "nope"
    bad = get_provider().check_connection()
    assert not bad.ok
    assert bad.message == "Twilio error 20003: Authenticate"
    assert "nope" not in bad.message

    twilio_settings.TWILIO_API_BASE_URL = f"http://127.0.0.1:{free_port()}"
    down = get_provider().check_connection()
    assert (down.ok, down.message) == (False, "Could not connect to Twilio.")


def test_webhook_inbound_is_verified_and_parsed(twilio_settings: Any, fake_twilio: Any) -> None:
    twilio_settings.PUBLIC_BASE_URL = "https://sms.example.com"
    url = "https://sms.example.com/sms/twilio/callback"
    captured: dict[str, Any] = {}

    # Capture what the fake would post, by signing the same params it builds.
    fake_twilio._post = lambda target, params: captured.update(params=params) or (200, "")
    fake_twilio.send_inbound("+14155550100", "+15005550006", "STOP", media_urls=["https://x.test/a.png"], url=url)
    params = captured["params"]
    headers = fake_twilio.sign(url, params)

    event = get_provider().parse_webhook(url="/sms/twilio/callback", params=params, headers=headers)

    assert isinstance(event, InboundEvent)
    assert (event.from_number, event.to_number, event.body) == ("+14155550100", "+15005550006", "STOP")
    assert event.media_urls == ("https://x.test/a.png",)
    assert event.from_country == "US"
    # The same request signed against the URL with its default port is accepted too (Twilio is inconsistent).
    headers_with_port = fake_twilio.sign("https://sms.example.com:443/sms/twilio/callback", params)
    assert (
        get_provider().parse_webhook(url=url, params=params, headers=headers_with_port).message_sid == event.message_sid
    )


def test_webhook_sha256_signature_settings_header(twilio_settings: Any, fake_twilio: Any) -> None:
    url = "http://127.0.0.1:8000/sms/twilio/callback"
    fake_twilio.control(signature_algorithm="HMAC_SHA256")
    params = {"MessageSid": "SM" + "a" * 32, "MessageStatus": "delivered", "AccountSid": fake_twilio.account_sid}
    headers = fake_twilio.sign(url, params)
    assert "X-Twilio-Webhooks-Signature-Settings" in headers
    assert get_provider().parse_webhook(url=url, params=params, headers=headers).status == "delivered"


@pytest.mark.parametrize(
    ("params", "signed", "status"),
    [
        ({"MessageSid": "SMx", "MessageStatus": "sent"}, False, 403),
        ({"From": "+14155550100", "Body": "hi"}, True, 400),
        ({"MessageSid": "SMx", "From": "+14155550100", "Body": "hi"}, True, 400),
        ({"MessageSid": "SMx", "From": "+1415", "Body": "hi", "AccountSid": "AC" + "9" * 32}, True, 400),
        ({"MessageStatus": "delivered"}, True, 400),
    ],
)
def test_webhook_rejects_forged_and_malformed(
    twilio_settings: Any, fake_twilio: Any, params: dict[str, str], signed: bool, status: int
) -> None:
    url = "http://127.0.0.1:8000/sms/twilio/callback"
    headers = fake_twilio.sign(url, params) if signed else {"X-Twilio-Signature": "forged"}
    with pytest.raises(WebhookRejected) as info:
        get_provider().parse_webhook(url=url, params=params, headers=headers)
    assert info.value.status == status


def test_console_provider_logs_and_returns_a_sid(settings: Any, caplog: pytest.LogCaptureFixture) -> None:
    settings.SMS_PROVIDER = "console"
    caplog.set_level(logging.INFO)
    result = get_provider().send(SendRequest(to=TO, body="Console hello", sender=FROM))
    assert result.sid.startswith("SM")
    assert result.status == "sent"
    assert "Console hello" in caplog.text
    assert TO in caplog.text


def test_provider_is_reused_while_config_is_unchanged(twilio_settings: Any) -> None:
    first = get_provider()
    assert get_provider() is first
    twilio_settings.TWILIO_FROM = "+14155550100"
    assert get_provider() is not first
    assert isinstance(first, TwilioProvider)


def test_a_signature_costs_one_hmac_in_the_common_case_and_the_port_variant_is_still_accepted(
    twilio_settings: Any, fake_twilio: Any
) -> None:
    from unittest import mock

    from twilio.request_validator import RequestValidator

    params = {"MessageSid": "SM" + "1" * 32, "MessageStatus": "delivered", "AccountSid": fake_twilio.account_sid}
    provider = get_provider()
    calls = mock.patch.object(
        RequestValidator, "compute_signature", autospec=True, side_effect=RequestValidator.compute_signature
    )
    url = "https://sms.example.com/sms/twilio/callback?m=7"
    headers = fake_twilio.sign(url, params)
    with calls as computed:
        provider.parse_webhook(url=url, params=params, headers=headers)
    assert computed.call_count == 1
    # A public URL with a port of its own (`make run`'s http://127.0.0.1:8000, a tunnel) is signed with that port: one
    # HMAC too, not the fast path's miss plus validate()'s two.
    local = "http://127.0.0.1:8000/sms/twilio/callback?m=7"
    local_headers = fake_twilio.sign(local, params)
    with calls as computed:
        provider.parse_webhook(url=local, params=params, headers=local_headers)
    assert computed.call_count == 1
    # Twilio's back end sometimes signs the URL with its default port: validate()'s second variant still holds.
    with_port = "https://sms.example.com:443/sms/twilio/callback?m=7"
    event = provider.parse_webhook(url=url, params=params, headers=fake_twilio.sign(with_port, params))
    assert isinstance(event, StatusEvent)
    with pytest.raises(WebhookRejected):
        provider.parse_webhook(
            url=url, params={**params, "MessageStatus": "failed"}, headers=fake_twilio.sign(url, params)
        )


def test_lookup_line_type_through_the_official_client_goes_to_the_configured_server(
    twilio_settings: Any, fake_twilio: Any
) -> None:
    fake_twilio.control(landlines=[TO])
    provider = get_provider()
    assert isinstance(provider, TwilioProvider)
    assert provider.line_type(TO) == "landline"
    assert provider.line_type("+14155552672") == "mobile"
    looked_up = [r["to"] for r in fake_twilio.requests() if r.get("lookup")]
    assert looked_up == [TO, "+14155552672"]  # both reached fake_twilio, not lookups.twilio.com
