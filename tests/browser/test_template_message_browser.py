"""A Content Template message built in the editor in real Chromium (pick the template, map its variables, see the
preview for a contact), then sent from a campaign by a real worker to fake_twilio: ContentSid + ContentVariables with
the contact's values, and no Body."""

from __future__ import annotations

import datetime as dt
import io
import time
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone

from campaigns import services
from campaigns.models import CampaignEvent
from contacts.models import Contact, Segment, SegmentMembership
from providers.twilio import fake_content
from smsapp.testing import procs
from tests.consent_helpers import give_consent
from tests.real_workers import worker_env
from texts.models import OutboundMessage, TextMessage

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ANN = "+447911123457"
WHATSAPP_SENDER = "+15005550007"


def _worker_env(fake: Any, live_server: Any) -> dict[str, str]:
    now = timezone.now()  # quiet hours opened around now: the marketing text goes whatever the hour
    return worker_env(
        fake,
        public_url=live_server.url,
        TWILIO_WHATSAPP_FROM=WHATSAPP_SENDER,
        SMS_QUIET_HOURS_START=(now - dt.timedelta(hours=2)).strftime("%H:%M"),
        SMS_QUIET_HOURS_END=(now + dt.timedelta(hours=2)).strftime("%H:%M"),
    )


def _wait_until(check: Any, what: str, worker: procs.Proc, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # bounded
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}\n{worker.output()[-3000:]}")


def _ready(page: Any) -> None:
    page.wait_for_load_state("load")
    page.wait_for_function("window.htmx !== undefined && document.readyState === 'complete'")


def test_marketer_builds_a_whatsapp_template_message_and_a_campaign_sends_it(
    login: Any, marketer_user: User, live_server: Any, fake_twilio: Any, twilio_settings: Any
) -> None:
    twilio_settings.PUBLIC_BASE_URL = live_server.url
    twilio_settings.TWILIO_WHATSAPP_FROM = WHATSAPP_SENDER
    call_command("sync_content_templates", stdout=io.StringIO())
    segment = Segment.objects.create(name="Customers")
    # Ann never wrote on WhatsApp: outside the 24-hour window only a template may go, which is what this builds.
    ann = Contact.objects.create(
        first_name="Ann", mobile=ANN, whatsapp=ANN, timezone="UTC", custom_fields={"order": "A-7"}
    )
    give_consent([ann])
    SegmentMembership.objects.create(segment=segment, contact=ann)
    worker = procs.start_worker(name="templates", env=_worker_env(fake_twilio, live_server))
    try:
        page = login(marketer_user)
        page.goto(live_server.url + "/text-messages/new/")
        _ready(page)
        page.get_by_label("Internal Name").fill("Order shipped")
        page.get_by_label("Channel").select_option(label="WhatsApp")
        page.get_by_label("Category").select_option(label="Transactional")
        page.get_by_label("Template", exact=True).select_option(label="order_shipped (en, WhatsApp approved)")
        # The picker swaps in one mapping field per variable, with the template's sample values.
        first = page.get_by_label("Variable {{1}} (sample: Ann)")
        first.wait_for()
        first.fill("{{first_name|there}}")
        page.get_by_label("Variable {{2}} (sample: A-1001)").fill("{{custom.order|your order}}")

        # The preview renders the template with the chosen contact's values.
        page.get_by_label("Preview for contact").select_option(label=str(ann))
        page.get_by_role("button", name="Show preview").click()
        preview = page.get_by_test_id("preview-text")
        preview.wait_for()
        page.wait_for_function(
            "document.querySelector('[data-testid=preview-text]').textContent.includes('Ann, your order A-7')"
        )
        assert preview.inner_text() == "Hi Ann, your order A-7 has shipped."

        page.get_by_role("button", name="Save").click()
        page.get_by_text("Text message “Order shipped” created.").wait_for()
        text = TextMessage.objects.get(name="Order shipped")
        assert text.content_sid == fake_content.ORDER_SHIPPED
        assert text.content_variables == {"1": "{{first_name|there}}", "2": "{{custom.order|your order}}"}
        assert text.body == ""
        assert (text.channel, text.category) == ("whatsapp", "transactional")

        # A campaign's Send Text Message action offers it; the engine sends it through the worker.
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Campaigns").click()
        page.get_by_role("link", name="New campaign").first.click()
        page.get_by_label("Name").fill("Shipping news")
        page.get_by_label(segment.name).check()
        page.get_by_role("button", name="Create and open the builder").click()
        page.get_by_role("heading", name="Shipping news").wait_for()
        _ready(page)
        page.get_by_role("button", name="+ Add an event").click()
        page.get_by_role("link", name="Send Text Message").click()
        page.get_by_label("Text message", exact=True).select_option(label="Order shipped (WhatsApp)")
        with page.expect_navigation(url="**?saved=*#event-*"):
            page.get_by_role("button", name="Add", exact=True).click()
        assert CampaignEvent.objects.get(kind="send_text_message").text_message == text
        page.get_by_role("button", name="Publish").click()
        page.get_by_text("Campaign published").wait_for()

        summary = services.campaigns_process()
        assert summary is not None
        assert summary.executed == 1
        _wait_until(lambda: len(fake_twilio.messages()) == 1, "the template at fake_twilio", worker)
        [sent] = fake_twilio.messages()
        assert sent["to"] == f"whatsapp:{ANN}"
        assert sent["from"] == f"whatsapp:{WHATSAPP_SENDER}"
        assert sent["content_sid"] == fake_content.ORDER_SHIPPED
        assert sent["content_variables"] == {"1": "Ann", "2": "A-7"}
        assert "Body" not in sent["fields"]
        _wait_until(
            lambda: OutboundMessage.objects.filter(contact=ann, provider_sid=sent["sid"]).exists(),
            "the outbound row to record the provider's sid",
            worker,
        )
        assert OutboundMessage.objects.get(contact=ann).body == "Hi Ann, your order A-7 has shipped."
    finally:
        worker.stop()
