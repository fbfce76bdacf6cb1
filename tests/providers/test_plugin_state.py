"""The plugin page, the dashboard and the sender choice agree with the configuration actually in effect."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from providers.senders import NoSender, choose_sender
from providers.twilio.config import get_config
from providers.twilio.models import TwilioSettings
from providers.twilio.services import twilio_settings_save

pytestmark = pytest.mark.django_db

SID = "AC" + "2" * 32


def _steps(client: Client) -> dict[str, bool]:
    response = client.get("/")
    return {step.label: step.done for step in response.context["steps"]}


def test_opening_the_page_does_not_switch_sending_off(admin_client: Client, twilio_settings: Any) -> None:
    # Credentials in the environment and no page saved yet: enabled. Opening the page used to create the settings
    # row (enabled off), so the dashboard said Done while the page said disabled.
    assert _steps(admin_client)["Connect Twilio and enable text messages"] is True
    page = admin_client.get("/settings/plugins/twilio/").content.decode()
    assert "Text messages enabled" in page
    assert not TwilioSettings.objects.exists()
    assert _steps(admin_client)["Connect Twilio and enable text messages"] is True
    assert get_config().enabled


def test_the_dashboard_step_follows_the_enabled_switch(admin_client: Client, twilio_settings: Any) -> None:
    TwilioSettings.objects.create(id=TwilioSettings.SINGLETON_ID, enabled=False)
    steps = _steps(admin_client)
    assert steps == {
        **steps,
        "Connect Twilio and enable text messages (connected, but text messages are disabled)": False,
    }
    assert "Text messages disabled" in admin_client.get("/settings/plugins/twilio/").content.decode()


def _save_alphanumeric(numbers: list[str]) -> None:
    twilio_settings_save(
        data={
            "enabled": True,
            "account_sid": SID,
            "auth_token": "t" * 32,
            "sender_type": "alphanumeric",
            "alphanumeric_sender_id": "ACME",
            "sender_rate_per_second": 10,
            "direction": "both",
            "status_callbacks": True,
            "help_text": "Hi",
        },
        numbers=[{"phone_number": n, "number_type": "long_code", "rate_per_second": 1} for n in numbers],
    )


def _pick(country: str) -> str:
    senders = get_config().senders
    return str(choose_sender(senders=senders, contact_id=7, to_number="+14155550123", country=country).sender.value)


def test_an_alphanumeric_sender_falls_back_to_the_pool_where_it_is_not_allowed() -> None:
    _save_alphanumeric(["+14155550100"])
    assert _pick("GB") == "ACME"
    assert _pick("US") == "+14155550100"  # US carriers refuse alphanumeric IDs: a pool number instead of nothing


def test_without_a_pool_the_page_and_the_refusal_say_what_to_do(admin_client: Client) -> None:
    _save_alphanumeric([])
    with pytest.raises(NoSender, match="add a phone number to the pool on the Twilio page"):
        _pick("US")
    page = admin_client.get("/settings/plugins/twilio/").content.decode()
    assert 'data-testid="alphanumeric-no-pool"' in page
    assert "Countries that refuse one (the US, Canada" in page


def test_the_page_says_what_outbound_only_really_does(admin_client: Client) -> None:
    page = admin_client.get("/settings/plugins/twilio/").content.decode()
    assert "replies are not processed" not in page
    assert "every reply Twilio posts is stored on the contact's timeline" in page
    assert "STOP and the other opt-out words mark the contact Do Not Contact" in page
    assert page.count("Recipients cannot reply to an Alphanumeric Sender ID") == 1


def test_a_reply_to_the_fallback_number_is_answered(settings: Any) -> None:
    from providers.twilio.testing import ACCOUNT_SID, AUTH_TOKEN, inbound_params, post
    from texts.keywords import keyword_seed_defaults

    keyword_seed_defaults()
    settings.SMS_PROVIDER = "twilio"
    settings.SMS_CALLBACK_SKIP_SIGNATURE = False
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM", "TWILIO_MESSAGING_SERVICE_SID"):
        setattr(settings, name, "")
    twilio_settings_save(
        data={
            "enabled": True,
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
            "sender_type": "alphanumeric",
            "alphanumeric_sender_id": "ACME",
            "sender_rate_per_second": 10,
            "direction": "both",
            "status_callbacks": True,
            "help_text": "Text STOP to stop.",
        },
        numbers=[{"phone_number": "+14155550100", "number_type": "long_code", "rate_per_second": 1}],
    )
    answer = post(Client(), inbound_params("HELP", to="+14155550100")).content.decode()
    assert "<Message>Text STOP to stop.</Message>" in answer
