"""Double opt-in by the public form in Chromium (issue 17): a visitor with no account fills /join/, a real worker
sends the confirmation to fake_twilio, fake_twilio's signed YES subscribes the number, and an admin sees the request
and the confirmation, with the consent text, on the contact's page."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache

from contacts.consent import consent_state
from contacts.models import ConsentSource, ConsentStatus, Contact
from providers.twilio.testing import PATH
from smsapp.testing import procs
from tests.real_workers import worker_env
from tests.texts.test_double_opt_in_workers import OURS, sent_to, wait_for, web_settings
from texts.keywords import keyword_seed_defaults

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

NUMBER = "+14155552424"


def test_the_join_form_then_yes_subscribes_and_the_contact_page_shows_it(
    page: Any, login: Any, live_server: Any, settings: Any, fake_twilio_process: Any, admin_user: User
) -> None:
    fake = fake_twilio_process
    web_settings(settings, fake, live_server)
    settings.SMS_DOUBLE_OPT_IN_CONSENT_TEXT = "I agree to Acme's weekly deals by text. Reply STOP to stop."
    keyword_seed_defaults()
    cache.clear()  # the form's limits
    worker = procs.start_worker(queues="sms_priority,sms_bulk", concurrency=1, env=worker_env(fake, sender=OURS))
    try:
        page.goto(f"{live_server.url}/join/")
        assert page.get_by_role("link", name="Contacts").count() == 0  # the public page, no navigation
        page.get_by_label("Mobile number").fill("(415) 555-2424")
        page.get_by_label("I agree to Acme's weekly deals by text.").check()
        page.get_by_role("button", name="Send me the confirmation text").click()
        page.get_by_text("Check your phone").wait_for()

        confirmation = wait_for(lambda: sent_to(fake, NUMBER), "the confirmation reaching fake_twilio")
        assert "Reply YES" in (confirmation[0].get("body") or confirmation[0].get("Body"))
        assert consent_state(address=NUMBER).status == ConsentStatus.NEVER
        assert fake.send_inbound(NUMBER, OURS, "YES", url=live_server.url + PATH)["status"] == 200
        state = consent_state(address=NUMBER)
        assert (state.status, state.source) == (ConsentStatus.SUBSCRIBED, ConsentSource.DOUBLE_OPT_IN)
    finally:
        worker.stop()

    contact = Contact.objects.get(mobile=NUMBER)
    login(admin_user)
    page.goto(f"{live_server.url}/contacts/{contact.pk}/")
    history = page.get_by_test_id("consent").inner_text()
    assert "Subscribed" in history
    assert "Confirmation requested (Web form)" in history
    assert "Subscribed (Double opt-in confirmation)" in history
    assert "I agree to Acme's weekly deals by text." in history
