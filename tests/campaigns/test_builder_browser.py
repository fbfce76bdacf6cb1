"""The builder in real Chromium: the seed's steps, with the keyboard where a marketer would use it."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from campaigns import services
from campaigns.models import Campaign, CampaignEvent, CampaignEventLog, LogStatus
from contacts.models import Contact, Segment, SegmentMembership
from smsapp.testing import procs
from tests.consent_helpers import give_consent
from tests.real_workers import worker_env
from texts.models import InboundMessage, OutboundMessage, TextMessage

CALLBACK = "/sms/twilio/callback"
ANN = "+447911123456"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _save(page: Any) -> None:
    """Save the panel's form: the builder reloads with the saved event focused."""
    with page.expect_navigation(url="**?saved=*#event-*"):
        page.get_by_role("button", name="Add", exact=True).click()
    page.wait_for_function("document.activeElement.id.startsWith('event-')")


def _builder_ready(page: Any, name: str) -> None:
    """Wait until the builder for ``name`` has loaded its scripts. Its buttons only work once htmx has processed
    the page (the scripts are deferred): a heading is visible earlier, and a key press or click in between is lost —
    the cause of the ``Locator.wait_for`` timeout on "Add an event" seen once on main."""
    page.get_by_role("heading", name=name).wait_for()
    page.wait_for_load_state("load")
    page.wait_for_function("window.htmx !== undefined && document.readyState === 'complete'")


def _panel_open(page: Any) -> bool:
    return bool(page.evaluate("document.getElementById('event-panel').open"))


def test_marketer_builds_a_campaign_with_a_decision_and_publishes(
    login: Any, marketer_user: User, live_server: Any
) -> None:
    segment = Segment.objects.create(name="Newsletter")
    Segment.objects.create(name="Asked")
    contact = Contact.objects.create(first_name="Ann", mobile="+447700900123")
    SegmentMembership.objects.create(segment=segment, contact=contact)
    page = login(marketer_user)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Campaigns").click()
    page.get_by_role("link", name="New campaign").first.click()
    page.get_by_label("Name").fill("Spring offer")
    page.get_by_label("Newsletter").check()
    page.get_by_role("button", name="Create and open the builder").click()
    _builder_ready(page, "Spring offer")
    campaign = Campaign.objects.get(name="Spring offer")

    # Escape closes the panel and gives focus back to the button that opened it.
    opener = page.get_by_role("button", name="+ Add an event")
    opener.focus()
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Add an event").wait_for()
    assert _panel_open(page)
    page.keyboard.press("Escape")
    page.wait_for_function("!document.getElementById('event-panel').open")
    assert page.evaluate("document.activeElement.textContent.trim()") == "+ Add an event"

    # First event: an action, chosen and saved with the keyboard.
    page.keyboard.press("Enter")
    page.get_by_role("link", name="Add to segment").click()
    page.get_by_label("Segment", exact=True).select_option(label="Asked")
    _save(page)
    action = CampaignEvent.objects.get(campaign=campaign)
    assert page.evaluate("document.activeElement.id") == f"event-{action.pk}"

    # A "Replies to a text message" decision after it, then an action on its yes path.
    page.get_by_role("button", name="Add an event after “Add to segment”").click()
    page.get_by_role("link", name="Replies to a text message").click()
    page.get_by_label("Reply pattern").fill("yes*")
    page.get_by_label("Wait for a reply for").fill("2")
    _save(page)
    page.get_by_role("button", name="Add an event on the yes path of “Replies to a text message”").click()
    page.get_by_role("link", name="Add Do Not Contact").click()
    _save(page)
    yes = CampaignEvent.objects.get(campaign=campaign, path="yes")
    assert yes.parent is not None
    assert yes.parent.kind == "replied_to_text"
    assert page.locator(".branch-yes .event-card").count() == 1

    page.get_by_role("button", name="Publish").click()
    page.get_by_text("Campaign published").wait_for()
    campaign.refresh_from_db()
    assert campaign.is_published

    # The engine runs; the canvas counts what happened per event.
    services.campaigns_process()
    assert CampaignEventLog.objects.get(event=action).status == "done"
    page.reload()
    counts = page.locator(f"#event-{action.pk} .event-counts").inner_text()
    assert "DONE\n1" in counts.upper()


def _worker_env(fake: Any, live_server: Any) -> dict[str, str]:
    """The worker sends to ``fake_twilio``; quiet hours are opened around now in UTC, so that the marketing message
    goes out whatever the hour the suite runs at (quiet hours have tests of their own in tests/texts)."""
    now = timezone.now()
    return worker_env(
        fake,
        public_url=live_server.url,
        SMS_QUIET_HOURS_START=(now - dt.timedelta(hours=2)).strftime("%H:%M"),
        SMS_QUIET_HOURS_END=(now + dt.timedelta(hours=2)).strftime("%H:%M"),
    )


def _wait_until(check: Any, what: str, worker: procs.Proc, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}\n{worker.output()[-3000:]}")


@pytest.mark.postgres
@pytest.mark.slow
def test_seed_create_a_new_text_message_then_send_and_follow_a_reply(
    login: Any, marketer_user: User, live_server: Any, fake_twilio: Any, twilio_settings: Any
) -> None:
    """Seed 000/001 "Create a new Text Message", word for word, then the campaign it builds runs for real: the
    engine sends through a Celery worker to fake_twilio, and a reply posted to /sms/twilio/callback moves the contact
    down the yes path."""
    twilio_settings.PUBLIC_BASE_URL = live_server.url  # the callback view checks signatures against this URL
    segment = Segment.objects.create(name="Newsletter")
    ann = Contact.objects.create(first_name="Ann", mobile=ANN, timezone="UTC")
    give_consent([ann])  # the campaign's text is marketing (the default category)
    SegmentMembership.objects.create(segment=segment, contact=ann)
    TextMessage.objects.create(name="Thanks for replying", body="Thanks {{first_name}}, we will call you.")
    worker = procs.start_worker(name="seed", env=_worker_env(fake_twilio, live_server))
    try:
        page = login(marketer_user)
        # 1. Go to Campaigns. 2. Create a new one. 3. Open the Campaign Builder.
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Campaigns").click()
        page.get_by_role("link", name="New campaign").first.click()
        page.get_by_label("Name").fill("Seed campaign")
        page.get_by_label(segment.name).check()
        page.get_by_role("button", name="Create and open the builder").click()
        _builder_ready(page, "Seed campaign")
        # 4. Add a Send Text Message action to the canvas.
        page.get_by_role("button", name="+ Add an event").click()
        page.get_by_role("link", name="Send Text Message").click()
        # 5. Click the New Text Message button: the form in a new browser window.
        with page.expect_popup() as popup_info:
            page.get_by_role("button", name="New Text Message").click()
        popup = popup_info.value
        # 6. Fill in the Internal Name and Text Message, and save.
        popup.get_by_label("Internal Name").fill("Welcome SMS")
        popup.get_by_label("Text Message").fill("Hello {{first_name}}, reply YES for a call.")
        popup.get_by_role("button", name="Save").click()
        popup.wait_for_event("close")  # it says it can be closed, and closes itself
        # The new Text message is pre-selected, so you can save the Send Text Message action as well.
        page.wait_for_function(
            "() => { const el = document.querySelector('[data-text-message-select]');"
            " return el.selectedOptions[0].text === 'Welcome SMS' && document.activeElement === el; }"
        )
        created = TextMessage.objects.get(name="Welcome SMS")
        assert page.get_by_label("Text message", exact=True).input_value() == str(created.pk)
        _save(page)
        send = CampaignEvent.objects.get(kind="send_text_message")
        assert send.text_message is not None
        assert send.text_message.name == "Welcome SMS"
        # A "Replies to a text message" decision, with an action on its yes path.
        page.get_by_role("button", name="Add an event after “Send Text Message”").click()
        page.get_by_role("link", name="Replies to a text message").click()
        page.get_by_label("Reply pattern").fill("yes*")
        page.get_by_label("Wait for a reply for").fill("1")
        _save(page)
        page.get_by_role("button", name="Add an event on the yes path of “Replies to a text message”").click()
        page.get_by_role("link", name="Send Text Message").click()
        page.get_by_label("Text message", exact=True).select_option(label="Thanks for replying")
        _save(page)
        page.get_by_role("button", name="Publish").click()
        page.get_by_text(
            "Campaign published: the engine runs it"
        ).wait_for()  # (the h1 reads "Seed campaign Published")
        decision = CampaignEvent.objects.get(kind="replied_to_text")
        thanks = CampaignEvent.objects.get(parent=decision, path="yes")

        # The engine run: the first text goes through the outbound pipeline and a real worker to fake_twilio.
        summary = services.campaigns_process()
        assert summary is not None
        assert summary.executed == 1
        assert summary.waiting == 1
        _wait_until(lambda: len(fake_twilio.messages()) == 1, "the first text at fake_twilio", worker)
        first = fake_twilio.messages()[0]
        # Her first marketing text: with the opt-out footer (texts/footer.py).
        assert (first["to"], first["body"]) == (ANN, "Hello Ann, reply YES for a call.\nReply STOP to opt out")
        _wait_until(
            lambda: OutboundMessage.objects.filter(contact=ann, provider_sid=first["sid"]).exists(),
            "the outbound row to record the provider's sid",
            worker,
        )
        assert CampaignEventLog.objects.get(event=decision).status == LogStatus.WAITING

        # The first text's status callbacks reach the real callback view and move it to delivered.
        _wait_until(
            lambda: OutboundMessage.objects.filter(contact=ann, status="delivered").exists(),
            "the delivered status callback",
            worker,
        )

        # The reply, the real way: fake_twilio posts it, signed, to the callback view, which stores it and tells
        # the campaigns app; the contact takes the yes path at once, through the worker, not at the next engine run.
        record = fake_twilio.send_inbound(ANN, "+15005550006", "Yes please", url=live_server.url + CALLBACK)
        assert record["status"] == 200
        assert InboundMessage.objects.get().contact == ann
        _wait_until(lambda: len(fake_twilio.messages()) == 2, "the yes-path text at fake_twilio", worker)
        second = fake_twilio.messages()[1]
        assert (second["to"], second["body"]) == (ANN, "Thanks Ann, we will call you.")
        log = CampaignEventLog.objects.get(event=decision)
        assert (log.status, log.path_taken) == (LogStatus.DONE, "yes")
        assert CampaignEventLog.objects.get(event=thanks).status == LogStatus.DONE
        assert "campaigns.run_contact_events" in worker.output()
        # The canvas counts it: a Send Text Message card counts its texts as the provider took them.
        page.reload()
        counts = page.locator(f"#event-{thanks.pk} .event-counts").inner_text()
        assert "SENT\n1" in counts.upper()
    finally:
        worker.stop()
