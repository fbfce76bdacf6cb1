"""Cost: Twilio prices a message only after it left, so the price is fetched later on the reconciliation path with
the official client against fake_twilio, stored with its currency and summed per message, campaign and month."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from twilio.rest import Client as TwilioClient

from contacts.models import Contact
from providers.base import Sender, SendRequest
from providers.registry import get_provider
from texts.engagement import cost_by_month, cost_for
from texts.models import OutboundMessage, Source, Status, TextMessage
from texts.reconcile import outbound_reconcile

from .test_reconcile import wait_final_at_fake

pytestmark = pytest.mark.django_db

SENDER = Sender(kind="number", value="+15005550006")


def test_fake_twilio_prices_a_message_on_fetch_after_a_delay_as_twilio_does(fake_twilio: Any) -> None:
    fake_twilio.control(price_delay_ms=300, prices={"US": 0.0079, "GB": 0.04})
    client = TwilioClient(fake_twilio.account_sid, fake_twilio.auth_token)
    client.api.base_url = fake_twilio.base_url
    created = client.messages.create(to="+14155550101", from_="+15005550006", body="x" * 200)  # two segments
    assert created.price is None
    assert client.messages(created.sid).fetch().price is None  # not yet
    wait_final_at_fake(fake_twilio, 1)
    time.sleep(0.35)
    fetched = client.messages(created.sid).fetch()
    assert (fetched.price, fetched.price_unit) == ("-0.01580", "USD")
    london = client.messages.create(to="+447400123456", from_="+15005550006", body="Hi")
    wait_final_at_fake(fake_twilio, 2)
    time.sleep(0.35)
    assert client.messages(london.sid).fetch().price == "-0.04000"


def test_fetch_status_carries_the_price_once_twilio_has_it(twilio_settings: Any, fake_twilio: Any) -> None:
    fake_twilio.control(price_delay_ms=0)
    provider = get_provider()
    result = provider.send(SendRequest(to="+14155550101", body="Hi", sender=SENDER))
    assert result.price is None  # the create answer has none
    wait_final_at_fake(fake_twilio, 1)
    event = provider.fetch_status(result.sid)
    assert event is not None
    assert (event.status, event.price, event.price_unit) == ("delivered", Decimal("-0.00830"), "USD")


def _delivered_without_price(to: str, text: TextMessage, *, minutes_ago: float = 30) -> OutboundMessage:
    contact = Contact.objects.create(first_name="Ada", mobile=to)
    result = get_provider().send(SendRequest(to=to, body="Hi", sender=SENDER))
    called = timezone.now() - dt.timedelta(minutes=minutes_ago)
    return OutboundMessage.objects.create(
        contact=contact,
        to_number=to,
        text_message=text,
        source=Source.BROADCAST,
        body="Hi",
        status=Status.DELIVERED,
        segments=1,
        provider_sid=result.sid,
        provider_called_at=called,
        sent_at=called,
        delivered_at=called,
    )


def test_the_price_fetched_later_shows_in_the_report(
    twilio_settings: Any, fake_twilio: Any, marketer_client: Client
) -> None:
    fake_twilio.control(price_delay_ms=0)
    text = TextMessage.objects.create(name="Spring sale", body="Hi")
    rows = [_delivered_without_price(to, text) for to in ("+14155550101", "+14155550102", "+447400123456")]
    wait_final_at_fake(fake_twilio, 3)
    before = marketer_client.get(f"/text-messages/{text.pk}/report/").content.decode()
    assert '<span class="stat-value" data-testid="cost">—</span>' in before

    result = outbound_reconcile()

    assert (result.priced, result.price_asked, result.checked) == (3, 3, 0)  # past sent: asked for the price only
    prices = {r.to_number: (r.price, r.price_unit) for r in OutboundMessage.objects.filter(pk__in=[r.pk for r in rows])}
    assert prices == {
        "+14155550101": (Decimal("-0.00830"), "USD"),
        "+14155550102": (Decimal("-0.00830"), "USD"),
        "+447400123456": (Decimal("-0.04630"), "USD"),
    }
    report = marketer_client.get(f"/text-messages/{text.pk}/report/").content.decode()
    assert "0.0629 USD" in report
    # Asked once: a second run within the recheck interval asks nobody again.
    again = outbound_reconcile()
    assert (again.checked, again.price_asked) == (0, 0)


def test_a_price_not_set_yet_is_asked_again_later(twilio_settings: Any, fake_twilio: Any, settings: Any) -> None:
    fake_twilio.control(price_delay_ms=60_000)
    text = TextMessage.objects.create(name="T", body="Hi")
    row = _delivered_without_price("+14155550101", text)
    wait_final_at_fake(fake_twilio, 1)
    assert outbound_reconcile().priced == 0
    row.refresh_from_db()
    assert row.price is None
    assert row.status_checked_at is not None
    fake_twilio.control(price_delay_ms=0)
    settings.SMS_RECONCILE_RECHECK_SECONDS = 0
    assert outbound_reconcile().priced == 1


def test_cost_is_summed_per_currency_and_month(db: None) -> None:
    text = TextMessage.objects.create(name="T", body="Hi")
    now = timezone.now()
    last_month = now.replace(day=1) - dt.timedelta(days=3)
    for price, unit, at in (
        ("-0.0083", "USD", now),
        ("-0.0083", "USD", now),
        ("-0.0400", "EUR", now),
        ("-0.0100", "USD", last_month),
    ):
        OutboundMessage.objects.create(
            to_number="+14155550101", text_message=text, source="api", status="delivered",
            price=Decimal(price), price_unit=unit, sent_at=at, provider_sid=f"SM{time.monotonic_ns()}",
        )  # fmt: skip
    OutboundMessage.objects.create(to_number="+1", text_message=text, source="api", status="sent", provider_sid="SMx")
    cost = cost_for(OutboundMessage.objects.all())
    assert str(cost) == "0.0400 EUR + 0.0266 USD"
    assert (cost.priced, cost.unpriced) == (4, 1)
    months = cost_by_month(OutboundMessage.objects.all())
    assert [str(m.cost) for m in months] == ["0.0400 EUR + 0.0166 USD", "0.0100 USD"]
