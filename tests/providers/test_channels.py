"""WhatsApp and Messenger in the Twilio plugin (issue 16): addresses, senders per channel, webhooks, error words, and
fake_twilio's session rule, with the official client over HTTP."""

from __future__ import annotations

import time
from typing import Any

import pytest

from providers.base import Sender, SendRequest, senders_for
from providers.registry import get_provider
from providers.twilio.config import get_config
from providers.twilio.errors import explain
from providers.twilio.forms import TwilioSettingsForm
from providers.twilio.webhooks import parse_twilio_params, split_address, twilio_address

pytestmark = pytest.mark.django_db

ANN = "+14155552671"
WHATSAPP_SENDER = "+14155238886"
PAGE = "104729837462849"


def _callbacks_for(fake: Any, sid: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # bounded
        seen = [c["params"] for c in fake.status_callbacks_sent() if c["params"]["MessageSid"] == sid]
        if len(seen) >= count:
            return seen
        time.sleep(0.02)
    raise AssertionError(f"fewer than {count} callbacks for {sid}")


def test_addresses_are_written_and_read_with_the_channel_prefix() -> None:
    assert twilio_address("whatsapp", ANN) == f"whatsapp:{ANN}"
    assert twilio_address("whatsapp", f"whatsapp:{ANN}") == f"whatsapp:{ANN}"
    assert twilio_address("messenger", PAGE) == f"messenger:{PAGE}"
    assert twilio_address("sms", ANN) == ANN
    assert split_address(f"WhatsApp:{ANN}") == ("whatsapp", ANN)
    assert split_address(f"messenger:{PAGE}") == ("messenger", PAGE)
    assert split_address(ANN) == ("sms", ANN)


def test_a_whatsapp_quick_reply_webhook_is_parsed_with_its_channel_profile_and_button() -> None:
    event = parse_twilio_params(
        {
            "MessageSid": "SM" + "a" * 32,
            "AccountSid": "AC" + "b" * 32,
            "From": f"whatsapp:{ANN}",
            "To": f"whatsapp:{WHATSAPP_SENDER}",
            "Body": "Yes please",
            "ProfileName": "Ann",
            "WaId": ANN.lstrip("+"),
            "ButtonText": "Yes please",
            "ButtonPayload": "YES_SALE",
            "NumMedia": "0",
        },
        account_sid="AC" + "b" * 32,
    )
    assert (event.channel, event.from_number, event.to_number) == ("whatsapp", ANN, WHATSAPP_SENDER)  # type: ignore[union-attr]
    assert (event.profile_name, event.button_text, event.button_payload) == ("Ann", "Yes please", "YES_SALE")  # type: ignore[union-attr]


def test_a_prefix_without_an_address_is_refused() -> None:
    from providers.base import WebhookRejected

    with pytest.raises(WebhookRejected) as info:
        parse_twilio_params(
            {"MessageSid": "SM" + "a" * 32, "AccountSid": "AC" + "b" * 32, "From": "whatsapp:", "Body": "x"},
            account_sid="",
        )
    assert info.value.status == 400


def test_each_channel_has_its_sender_and_a_messaging_service_serves_the_rest(settings: Any) -> None:
    settings.TWILIO_ACCOUNT_SID = "AC" + "c" * 32
    settings.TWILIO_FROM = "+15005550006"
    settings.TWILIO_MESSAGING_SERVICE_SID = ""
    settings.TWILIO_WHATSAPP_FROM = WHATSAPP_SENDER
    settings.TWILIO_MESSENGER_FROM = ""
    config = get_config()
    assert [s.sender for s in senders_for(config, "sms")] == [Sender("number", "+15005550006")]
    assert [s.sender for s in senders_for(config, "whatsapp")] == [Sender("number", WHATSAPP_SENDER)]
    assert senders_for(config, "messenger") == ()  # no sender: the message fails saying what to configure
    assert "TWILIO_WHATSAPP_FROM" in config.from_env

    settings.TWILIO_MESSAGING_SERVICE_SID = "MG" + "d" * 32
    service = get_config()
    assert [s.sender.kind for s in senders_for(service, "messenger")] == ["messaging_service"]
    assert [s.sender.value for s in senders_for(service, "whatsapp")] == [WHATSAPP_SENDER]  # its own wins


def test_the_630xx_codes_have_words_a_marketer_reads() -> None:
    assert "24-hour window" in explain("63016")
    assert "template" in explain("63016")
    assert explain("63003")
    assert explain("63007")


def test_the_plugin_page_checks_the_channel_senders() -> None:
    base = {"sender_type": "numbers", "sender_rate_per_second": "10", "direction": "both"}
    form = TwilioSettingsForm({**base, "whatsapp_from": "whatsapp:+14155238886", "messenger_from": PAGE})
    assert form.is_valid(), form.errors
    assert (form.cleaned_data["whatsapp_from"], form.cleaned_data["messenger_from"]) == (WHATSAPP_SENDER, PAGE)
    bad = TwilioSettingsForm({**base, "whatsapp_from": "0123", "messenger_from": "my page"})
    assert not bad.is_valid()
    assert "E.164" in bad.errors["whatsapp_from"][0]
    assert "Page ID" in bad.errors["messenger_from"][0]


def test_whatsapp_through_the_official_client_and_fake_twilios_session_rule(
    twilio_settings: Any, fake_twilio: Any
) -> None:
    sender = Sender("number", WHATSAPP_SENDER)
    provider = get_provider()
    callback = "http://127.0.0.1:9/sms/twilio/callback"  # nobody listens: only what fake_twilio sends is looked at

    outside = provider.send(SendRequest(to=ANN, body="Hi", sender=sender, channel="whatsapp", status_callback=callback))
    [message] = fake_twilio.messages()
    assert (message["to"], message["from"]) == (f"whatsapp:{ANN}", f"whatsapp:{WHATSAPP_SENDER}")
    # Twilio accepts a free-form message outside the window, then fails it with 63016.
    final = _callbacks_for(fake_twilio, outside.sid, 2)[-1]
    assert (final["MessageStatus"], final["ErrorCode"]) == ("failed", "63016")

    fake_twilio.control(whatsapp_sessions=[ANN])  # as if Ann had just written
    inside = provider.send(SendRequest(to=ANN, body="Hi", sender=sender, channel="whatsapp", status_callback=callback))
    statuses = [c["MessageStatus"] for c in _callbacks_for(fake_twilio, inside.sid, 4)]
    assert statuses == ["queued", "sent", "delivered", "read"]


def test_messenger_through_the_official_client(twilio_settings: Any, fake_twilio: Any) -> None:
    psid = "2456789012345678"
    get_provider().send(SendRequest(to=psid, body="Hello", sender=Sender("page", PAGE), channel="messenger"))
    [message] = fake_twilio.messages()
    assert (message["to"], message["from"], message["channel"]) == (
        f"messenger:{psid}",
        f"messenger:{PAGE}",
        "messenger",
    )


def test_fake_twilio_refuses_mixed_channels(twilio_settings: Any, fake_twilio: Any) -> None:
    from providers.base import ProviderError

    with pytest.raises(ProviderError) as info:
        get_provider().send(SendRequest(to=f"whatsapp:{ANN}", body="Hi", sender=Sender("number", "+15005550006")))
    assert info.value.code == "30016"
    assert fake_twilio.messages() == []
