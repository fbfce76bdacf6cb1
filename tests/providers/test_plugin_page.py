"""Settings > Plugins > Twilio: admins only, validation, write-only encrypted secrets, env wins, Test connection."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from providers.twilio.config import get_config
from providers.twilio.models import SenderNumber, TwilioSettings

pytestmark = pytest.mark.django_db

URL = "/settings/plugins/twilio/"
TEST_URL = "/settings/plugins/twilio/test"
SID = "AC" + "a1" * 16
TOKEN = "secret-token-" + "9f" * 8 + "1a2b"


def _post(client: Client, **overrides: Any) -> Any:
    data: dict[str, Any] = {
        "enabled": "on",
        "account_sid": SID,
        "auth_token": TOKEN,
        "api_key_sid": "",
        "api_key_secret": "",
        "sender_type": "numbers",
        "messaging_service_sid": "",
        "alphanumeric_sender_id": "",
        "sender_rate_per_second": "10",
        "direction": "both",
        "status_callbacks": "on",
        "help_text": "Reply STOP to stop.",
        "numbers-TOTAL_FORMS": "2",
        "numbers-INITIAL_FORMS": "0",
        "numbers-MIN_NUM_FORMS": "0",
        "numbers-MAX_NUM_FORMS": "1000",
        "numbers-0-phone_number": "+14155552671",
        "numbers-0-friendly_name": "Main",
        "numbers-0-number_type": "long_code",
        "numbers-0-rate_per_second": "",
        "numbers-1-phone_number": "+18005550100",
        "numbers-1-friendly_name": "Toll-free",
        "numbers-1-number_type": "toll_free",
        "numbers-1-rate_per_second": "",
    }
    data.update(overrides)
    return client.post(URL, {k: v for k, v in data.items() if v is not None})


def test_marketer_gets_403(marketer_client: Client) -> None:
    assert marketer_client.get(URL).status_code == 403
    assert _post(marketer_client).status_code == 403
    assert marketer_client.post(TEST_URL, {}).status_code == 403
    assert not TwilioSettings.objects.filter(account_sid=SID).exists()


def test_settings_index_links_the_page(admin_client: Client) -> None:
    assert URL in admin_client.get("/settings/").content.decode()


def test_save_stores_token_encrypted_and_shows_it_masked(admin_client: Client) -> None:
    response = _post(admin_client)
    assert response.status_code == 302

    row = TwilioSettings.objects.get()
    assert TOKEN not in row.auth_token_encrypted
    assert row.auth_token == TOKEN
    page = admin_client.get(URL).content.decode()
    assert TOKEN not in page
    assert "••••••••1a2b" in page
    config = get_config()
    assert config.enabled
    assert [(s.sender.value, s.rate_per_second) for s in config.senders] == [
        ("+14155552671", 1.0),
        ("+18005550100", 3.0),
    ]


def test_blank_token_keeps_the_stored_one(admin_client: Client) -> None:
    _post(admin_client)
    assert _post(admin_client, auth_token="", help_text="Changed").status_code == 302
    row = TwilioSettings.objects.get()
    assert (row.auth_token, row.help_text) == (TOKEN, "Changed")


@pytest.mark.parametrize(
    ("overrides", "field_error"),
    [
        ({"account_sid": "AC123"}, "An Account SID starts with AC followed by 32 hexadecimal characters"),
        ({"account_sid": "XX" + "a" * 32}, "An Account SID starts with AC"),
        ({"api_key_sid": "SK12", "api_key_secret": "s"}, "An API Key SID starts with SK"),
        (
            {"sender_type": "messaging_service", "messaging_service_sid": "MGzz"},
            "A Messaging Service SID starts with MG",
        ),
        ({"sender_type": "messaging_service"}, "Enter the Messaging Service SID to send from it."),
        ({"sender_type": "alphanumeric", "alphanumeric_sender_id": "123"}, "at least one letter"),
        ({"sender_type": "alphanumeric", "alphanumeric_sender_id": "Shop-Now!"}, "letters, digits and spaces"),
        ({"sender_type": "alphanumeric", "alphanumeric_sender_id": "Twelve chars"}, "at most 11 characters"),
        ({"numbers-0-phone_number": "4155552671"}, "is not in E.164 format"),
        ({"numbers-0-phone_number": "+15551234567"}, "is not a valid phone number"),
        ({"numbers-1-phone_number": "+14155552671"}, "is in the pool twice"),
        (
            {"numbers-0-phone_number": "", "numbers-1-phone_number": ""},
            "Add at least one phone number to send from the number pool.",
        ),
        ({"auth_token": ""}, "Enter the Auth Token (or an API Key) to enable text messages."),
        ({"api_key_sid": "SK" + "b" * 32}, "Enter the API Key Secret that goes with the API Key SID."),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(
    admin_client: Client, overrides: dict[str, str], field_error: str
) -> None:
    response = _post(admin_client, **overrides)
    assert response.status_code == 200
    assert field_error in response.content.decode()
    assert not TwilioSettings.objects.filter(account_sid=SID).exists()
    assert not SenderNumber.objects.exists()


def test_alphanumeric_sender_page_says_no_replies(admin_client: Client) -> None:
    assert _post(admin_client, sender_type="alphanumeric", alphanumeric_sender_id="Acme 2").status_code == 302
    config = get_config()
    kinds = [s.sender.kind for s in config.senders]
    # The alphanumeric ID first; the pool's numbers after it, for the countries that refuse alphanumeric IDs.
    assert kinds[0] == "alphanumeric"
    assert set(kinds[1:]) <= {"number"}
    assert "Recipients cannot reply" in admin_client.get(URL).content.decode()


def test_environment_wins_and_the_page_says_so(admin_client: Client, settings: Any) -> None:
    _post(admin_client)
    settings.TWILIO_ACCOUNT_SID = "AC" + "e" * 32
    settings.TWILIO_FROM = "+14155550100"
    config = get_config()
    assert config.account_sid == "AC" + "e" * 32
    assert [s.sender.value for s in config.senders] == ["+14155550100"]
    page = admin_client.get(URL).content.decode()
    assert "Set by <code>TWILIO_ACCOUNT_SID</code>" in page
    assert "<code>TWILIO_FROM</code>" in page


def test_page_shows_callback_url_with_copy_button(admin_client: Client, settings: Any) -> None:
    settings.PUBLIC_BASE_URL = "https://sms.example.com"
    page = admin_client.get(URL).content.decode()
    # A textarea that wraps: the whole URL is visible however narrow the column (it was cut off in an input).
    assert 'spellcheck="false">https://sms.example.com/sms/twilio/callback</textarea>' in page
    assert 'data-copy="callback-url"' in page


def test_test_connection_good_and_bad_against_fake_twilio(
    admin_client: Client, settings: Any, fake_twilio: Any
) -> None:
    settings.TWILIO_API_BASE_URL = fake_twilio.base_url
    good = admin_client.post(
        TEST_URL, {"account_sid": fake_twilio.account_sid, "auth_token": fake_twilio.auth_token}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "Connected to account “fake_twilio development account”." in good
    assert fake_twilio.auth_token not in good

    bad = admin_client.post(TEST_URL, {"account_sid": fake_twilio.account_sid, "auth_token": "wrong"}).content.decode()
    assert "Twilio error 20003: Authenticate" in bad

    malformed = admin_client.post(TEST_URL, {"account_sid": "AC1", "auth_token": "x"}).content.decode()
    assert "An Account SID starts with AC" in malformed


def test_test_connection_uses_the_stored_token_when_left_blank(
    admin_client: Client, settings: Any, fake_twilio: Any
) -> None:
    settings.TWILIO_API_BASE_URL = fake_twilio.base_url
    _post(admin_client, account_sid=fake_twilio.account_sid, auth_token=fake_twilio.auth_token)
    page = admin_client.post(TEST_URL, {"account_sid": fake_twilio.account_sid, "auth_token": ""}).content.decode()
    assert "Connected to account" in page
