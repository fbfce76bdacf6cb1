"""An admin fills in the Twilio plugin in a real browser, tests the connection against fake_twilio and saves."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from providers.twilio.config import get_config
from providers.twilio.models import TwilioSettings

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_admin_configures_tests_and_saves_the_twilio_plugin(
    login: Any, live_server: Any, admin_user: User, fake_twilio: Any, settings: Any
) -> None:
    settings.TWILIO_API_BASE_URL = fake_twilio.base_url
    page = login(admin_user)
    page.goto(f"{live_server.url}/settings/")
    page.get_by_role("link", name="Plugins: Twilio").click()
    page.wait_for_url(f"{live_server.url}/settings/plugins/twilio/")

    page.get_by_label("Text Message Enabled").check()
    page.get_by_label("Account SID").fill(fake_twilio.account_sid)
    page.get_by_label("Auth Token").fill("not-the-token")
    page.get_by_role("button", name="Test connection").click()
    page.locator("#test-result").get_by_text("Twilio error 20003: Authenticate").wait_for()

    page.get_by_label("Auth Token").fill(fake_twilio.auth_token)
    page.get_by_role("button", name="Test connection").click()
    page.locator("#test-result").get_by_text("Connected to account").wait_for()

    page.get_by_label("Phone number (E.164), row 1").fill("+14155552671")
    page.get_by_label("Friendly name, row 1").fill("Main line")
    page.get_by_label("Direction").select_option("both")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Twilio settings saved.").wait_for()

    assert fake_twilio.auth_token not in page.content()
    row = TwilioSettings.objects.get()
    assert row.account_sid == fake_twilio.account_sid
    assert row.auth_token == fake_twilio.auth_token
    config = get_config()
    assert config.enabled
    assert [(s.sender.value, s.rate_per_second) for s in config.senders] == [("+14155552671", 1.0)]


@pytest.mark.parametrize("width", [390, 1280])
def test_the_incoming_callback_url_is_shown_whole_in_a_narrow_column(
    login: Any, live_server: Any, admin_user: User, settings: Any, width: int
) -> None:
    settings.PUBLIC_BASE_URL = "https://sms.a-rather-long-subdomain.example-company.com"
    page = login(admin_user)
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{live_server.url}/settings/plugins/twilio/")
    field = page.get_by_label("Incoming callback URL")
    assert field.input_value() == settings.PUBLIC_BASE_URL + "/sms/twilio/callback"
    # Nothing is cut off: the text wraps inside the field instead of scrolling out of sight.
    overflow = field.evaluate("el => [el.scrollWidth, el.clientWidth, el.scrollHeight, el.clientHeight]")
    assert overflow[0] <= overflow[1], overflow
    assert overflow[2] <= overflow[3] + 2, overflow
