"""Issue 18 in Chromium: the confirmation with count and cost before a broadcast, the charts drawn with their axes
(screenshots kept under the test's tmp folder, and looked at), the inbox thread updating without a reload, and the
editor counting on a rendered sample."""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from contacts.models import Contact, Segment
from contacts.services import segment_add_contacts
from providers.base import InboundEvent
from tests.consent_helpers import give_consent
from texts.inbound import inbound_receive
from texts.models import CountryPrice, OutboundMessage, ShortLink, TextMessage

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SHOTS = Path(os.environ.get("SMSAPP_SCREENSHOTS", "")) if os.environ.get("SMSAPP_SCREENSHOTS") else None


def shot(page: Any, tmp_path: Path, name: str) -> Path:
    path = (SHOTS or tmp_path) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


def test_saving_a_broadcast_asks_with_count_segments_and_cost(
    login: Any, live_server: Any, marketer_user: User, tmp_path: Path
) -> None:
    segment = Segment.objects.create(name="Regulars")
    people = [Contact.objects.create(first_name=f"Ada{i}", mobile=f"+1415555{i:04d}", country="US") for i in range(12)]
    segment_add_contacts(segment=segment, contact_ids=[c.pk for c in people], record=False)
    give_consent(people)  # marketing: the estimate counts those the fan-out would queue, the consented
    CountryPrice.objects.create(country="US", price_per_segment=Decimal("0.0083"), currency="USD")
    page = login(marketer_user)
    page.goto(f"{live_server.url}/text-messages/new/")
    page.get_by_label("Internal Name").fill("Spring sale")
    page.get_by_label("Text Message").fill("Hi {{first_name|there}}, 20% off today: https://shop.example.com/spring")
    counter = page.locator("#sms-counter")
    assert "as sent to Ada0" in counter.inner_text()
    assert "links as" in counter.inner_text()
    page.get_by_label("Regulars").check()
    page.get_by_role("button", name="Save").click()
    dialog = page.get_by_test_id("confirm-broadcast")
    dialog.wait_for()
    assert "Send to 12 contacts?" in dialog.inner_text()
    assert "1 segment per recipient" in dialog.inner_text()
    assert "Estimated cost: 0.10 USD" in dialog.inner_text()
    assert "at the next scheduled run" in dialog.inner_text()
    shot(page, tmp_path, "confirm-broadcast")
    assert not TextMessage.objects.exists()
    page.get_by_role("button", name="Keep editing").click()
    assert not dialog.is_visible()
    page.get_by_role("button", name="Save").click()
    page.get_by_role("button", name="Save and send to 12").click()
    page.get_by_text("created").wait_for()
    assert TextMessage.objects.get().send_to_new_members is True
    panel = page.get_by_test_id("new-members")
    panel.wait_for()
    assert "New members of its segments receive it automatically" in panel.inner_text()
    with mock.patch("texts.tasks.broadcast_send_task.apply_async"):
        page.get_by_role("button", name="Send now…").click()
        send = page.get_by_test_id("confirm-broadcast")
        send.wait_for()
        assert "Send to 12 contacts?" in send.inner_text()
        assert "now" in send.inner_text()


def test_the_report_draws_a_funnel_and_lines_with_axes(
    login: Any, live_server: Any, marketer_user: User, tmp_path: Path
) -> None:
    text = TextMessage.objects.create(name="Spring sale", body="Hi")
    start = timezone.now().replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=5)
    for i in range(40):
        at = start + dt.timedelta(hours=i % 6, minutes=i)
        status = "delivered" if i % 5 else "undelivered"
        row = OutboundMessage.objects.create(
            text_message=text, to_number=f"+1415555{i:04d}", source="broadcast", status=status, provider_sid=f"SM{i}",
            sent_at=at, delivered_at=at if status == "delivered" else None,
            undelivered_at=None if status == "delivered" else at, price=Decimal("-0.0083"), price_unit="USD",
        )  # fmt: skip
        if i % 3 == 0:
            ShortLink.objects.create(code=f"code{i:08d}", outbound=row, text_message=text, url="https://x.example/",
                                     clicks=1, first_clicked_at=at + dt.timedelta(minutes=3))  # fmt: skip
    page = login(marketer_user)
    page.goto(f"{live_server.url}/text-messages/{text.pk}/report/")
    page.wait_for_function("() => window.Chart && Chart.getChart(document.querySelector('canvas[data-chart=lines]'))")
    charts = page.evaluate(
        """() => [...document.querySelectorAll('canvas[data-chart]')].map(c => {
             const chart = Chart.getChart(c);
             return {kind: c.dataset.chart, scales: Object.keys(chart.scales), width: c.width,
                     datasets: chart.data.datasets.map(d => [d.label, d.data.reduce((a, b) => a + b, 0)])};
           })"""
    )
    funnel, lines = charts
    assert funnel["kind"] == "funnel"
    assert funnel["datasets"] == [["Messages", 40 + 40 + 32 + 14]]  # queued, sent, delivered, clicked
    assert set(lines["scales"]) == {"x", "y"}
    assert dict(lines["datasets"]) == {"Sent": 40, "Delivered": 32, "Failed": 8, "Clicked": 14, "Replied": 0}
    assert lines["width"] > 300
    assert page.get_by_test_id("unique-clicks").inner_text() == "14"
    assert page.get_by_test_id("cost").inner_text() == "0.3320 USD"
    shot(page, tmp_path, "report-charts")


def test_the_inbox_thread_updates_without_a_reload(
    login: Any, live_server: Any, marketer_user: User, tmp_path: Path
) -> None:
    ada = Contact.objects.create(first_name="Ada", mobile="+14155550101")

    def reply(body: str, sid: str) -> None:
        inbound_receive(event=InboundEvent(message_sid=sid, account_sid="AC1", from_number="+14155550101",
                                           to_number="+15005550006", body=body))  # fmt: skip

    reply("Is the sale still on?", "SM1")
    page = login(marketer_user)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Conversations 1 unread").click()
    page.get_by_role("link", name="Ada").click()
    page.get_by_text("Is the sale still on?").wait_for()
    reply("Hello?", "SM2")
    page.get_by_text("Hello?").wait_for(timeout=10_000)  # the thread polls: no reload
    with mock.patch("texts.tasks.outbound_send_batch.apply_async"):
        page.get_by_label("Reply").fill("Yes, until Sunday!")
        page.get_by_role("button", name="Send reply").click()
        page.locator(".bubble-out", has_text="Yes, until Sunday!").wait_for()
    assert page.get_by_label("Reply").input_value() == ""
    assert OutboundMessage.objects.get(contact=ada).source == "conversation"
    shot(page, tmp_path, "inbox-thread")


def test_the_editor_counts_segments_for_sms_only(login: Any, live_server: Any, marketer_user: User) -> None:
    """WhatsApp and Messenger are neither split nor billed by segments: the counter says so when the channel changes."""
    page = login(marketer_user)
    page.goto(f"{live_server.url}/text-messages/new/")
    page.get_by_label("Text Message").fill("Hello there")
    counter = page.locator("#sms-counter")
    assert "1 segment" in counter.inner_text()
    page.get_by_label("Channel").select_option(label="WhatsApp")
    page.wait_for_function("!document.getElementById('sms-counter').textContent.includes('segment ')")
    assert "characters · WhatsApp: no segments, up to 1600 characters" in counter.inner_text()
    page.get_by_label("Channel").select_option(label="SMS")
    page.wait_for_function("document.getElementById('sms-counter').textContent.includes('1 segment')")
