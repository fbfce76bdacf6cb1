"""Double opt-in (issue 17): the public form and the join keyword send "Reply YES to confirm" through the pipeline
and record a pending request; only a YES from that number within the window subscribes it (source double_opt_in,
with the consent text). The form needs no login, refuses a forged post (CSRF) and is limited per address and per
number. The same paths with a real worker and fake_twilio: test_double_opt_in_workers.py and the browser test."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from contacts.consent import consent_state
from contacts.models import ConsentEvent, ConsentRequest, ConsentSource, ConsentStatus, Contact
from contacts.services import dnc_add
from providers.twilio.testing import configure, inbound_params, post
from texts.double_opt_in import double_opt_in_request
from texts.models import OutboundMessage, Source, Status

pytestmark = pytest.mark.django_db

NUMBER = "+14155550123"
OTHER = "+14155550199"


@pytest.fixture(autouse=True)
def _setup(settings: Any) -> Iterator[None]:
    configure(settings)
    cache.clear()  # the form's limits count in the cache (Redis in this pass): each test starts from zero
    yield
    cache.clear()


def _join(client: Client, mobile: str = NUMBER, *, ip: str = "203.0.113.7", agree: bool = True) -> Any:
    data = {"mobile": mobile, **({"agree": "on"} if agree else {})}
    return client.post("/join/", data, REMOTE_ADDR=ip)


# The form


def test_the_form_opens_without_login_and_shows_the_consent_text(client: Client, settings: Any) -> None:
    settings.SMS_DOUBLE_OPT_IN_CONSENT_TEXT = "I agree to Acme's weekly deals by text."
    page = client.get("/join/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "I agree to Acme&#x27;s weekly deals by text." in html
    assert "csrfmiddlewaretoken" in html


def test_a_request_queues_the_confirmation_and_records_a_pending_event(client: Client, settings: Any) -> None:
    settings.SMS_DOUBLE_OPT_IN_MESSAGE = "Acme: reply YES to confirm deals by text."
    response = _join(client, "(415) 555-0123")
    assert response.status_code == 302
    assert "Check your phone" in client.get(response["Location"]).content.decode()
    contact = Contact.objects.get(mobile=NUMBER)
    message = OutboundMessage.objects.get()
    assert (message.to_number, message.body, message.source, message.priority, message.status) == (
        NUMBER, "Acme: reply YES to confirm deals by text.", Source.DOUBLE_OPT_IN, True, Status.QUEUED,
    )  # fmt: skip
    assert message.text_message is None  # transactional: no consent needed to ask for it
    event = ConsentEvent.objects.get()
    assert (event.status, event.source, event.contact_id) == ("pending", ConsentSource.WEB_FORM, contact.pk)
    assert settings.SMS_DOUBLE_OPT_IN_CONSENT_TEXT in event.consent_text
    assert "203.0.113.7" in event.recorded_by
    assert consent_state(address=NUMBER).status == ConsentStatus.NEVER  # not before the YES


def test_a_forged_post_is_refused_and_changes_nothing() -> None:
    forged = Client(enforce_csrf_checks=True)
    assert forged.post("/join/", {"mobile": NUMBER, "agree": "on"}).status_code == 403
    assert not ConsentRequest.objects.exists()
    assert not OutboundMessage.objects.exists()


@pytest.mark.parametrize(
    ("mobile", "agree", "error"),
    [("12", True, "not a mobile number"), (NUMBER, False, "Tick the box"), ("", True, "required")],
)
def test_bad_input_is_refused_with_the_reason(client: Client, mobile: str, agree: bool, error: str) -> None:
    response = _join(client, mobile, agree=agree)
    assert response.status_code == 400
    assert error in response.content.decode()
    assert not ConsentRequest.objects.exists()
    assert not Contact.objects.exists()


def test_the_form_is_limited_per_client_address(client: Client, settings: Any) -> None:
    settings.SMS_JOIN_RATE_PER_IP = "2/h"
    assert _join(client, "+14155550101").status_code == 302
    assert _join(client, "+14155550102").status_code == 302
    refused = _join(client, "+14155550103")
    assert refused.status_code == 429
    assert "Too many requests" in refused.content.decode()
    assert _join(client, "+14155550104", ip="198.51.100.9").status_code == 302  # another address is not limited
    assert ConsentRequest.objects.count() == 3
    assert not Contact.objects.filter(mobile="+14155550103").exists()


def test_the_form_is_limited_per_number_whatever_the_address(client: Client, settings: Any) -> None:
    settings.SMS_JOIN_RATE_PER_NUMBER = "2/h"
    assert _join(client, NUMBER, ip="198.51.100.1").status_code == 302
    assert _join(client, "(415) 555-0123", ip="198.51.100.2").status_code == 302  # the same number, written apart
    assert _join(client, NUMBER, ip="198.51.100.3").status_code == 429
    assert OutboundMessage.objects.count() == 2


# The confirmation


def test_yes_within_the_window_subscribes_once_with_the_consent_text(client: Client) -> None:
    _join(client)
    post(client, inbound_params("Yes!"))
    state = consent_state(address=NUMBER)
    assert (state.status, state.source) == (ConsentStatus.SUBSCRIBED, ConsentSource.DOUBLE_OPT_IN)
    confirmed = ConsentEvent.objects.get(status="subscribed")
    assert confirmed.source == ConsentSource.DOUBLE_OPT_IN
    assert "marketing text messages" in confirmed.consent_text
    assert ConsentRequest.objects.get().confirmed_at is not None
    post(client, inbound_params("YES"))  # a second YES confirms nothing more
    assert ConsentEvent.objects.filter(status="subscribed").count() == 1


def test_yes_after_the_window_subscribes_nothing(client: Client) -> None:
    _join(client)
    ConsentRequest.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    post(client, inbound_params("YES"))
    assert consent_state(address=NUMBER).status == ConsentStatus.NEVER
    assert not ConsentEvent.objects.filter(status="subscribed").exists()


def test_yes_without_a_request_does_nothing_harmful(client: Client) -> None:
    contact = Contact.objects.create(mobile=NUMBER)
    dnc_add(contact=contact, reason="unsubscribed", source="marketer")  # a marketer's opt-out stays
    response = post(client, inbound_params("YES"))
    assert response.status_code == 200
    assert consent_state(address=NUMBER).status == ConsentStatus.NEVER
    assert not ConsentEvent.objects.exists()
    assert contact.dnc_entries.filter(lifted_at__isnull=True).exists()


def test_yes_from_another_number_does_not_confirm(client: Client) -> None:
    _join(client)
    post(client, inbound_params("YES", from_=OTHER))
    assert consent_state(address=NUMBER).status == ConsentStatus.NEVER
    assert consent_state(address=OTHER).status == ConsentStatus.NEVER
    assert ConsentRequest.objects.get().confirmed_at is None


def test_start_is_not_a_confirmation(client: Client) -> None:
    _join(client)
    post(client, inbound_params("START"))
    assert consent_state(address=NUMBER).status == ConsentStatus.NEVER


def test_the_join_keyword_asks_for_confirmation_through_the_pipeline(client: Client) -> None:
    response = post(client, inbound_params(" join "))
    assert response.content.decode().endswith("<Response />")  # the confirmation goes as a text of its own
    message = OutboundMessage.objects.get()
    assert (message.to_number, message.source, message.priority) == (NUMBER, Source.DOUBLE_OPT_IN, True)
    assert "Reply YES" in message.body
    event = ConsentEvent.objects.get()
    assert (event.status, event.source) == ("pending", ConsentSource.KEYWORD)
    post(client, inbound_params("yes"))
    assert consent_state(address=NUMBER).source == ConsentSource.DOUBLE_OPT_IN


def test_an_admin_renamed_join_word_works(client: Client, admin_client: Client) -> None:
    from texts.models import Keyword

    join = Keyword.objects.get(word="JOIN")
    edit = {"word": "DEALS", "kind": "join", "auto_reply": "", "active": "on"}
    assert admin_client.post(f"/settings/sms-keywords/{join.pk}/", edit).status_code == 302
    post(client, inbound_params("deals"))
    assert ConsentRequest.objects.filter(address=NUMBER, source=ConsentSource.KEYWORD).exists()


def test_the_consent_log_holds_the_request_and_the_confirmation(client: Client, admin_client: Client) -> None:
    contact = Contact.objects.create(mobile=NUMBER)
    double_opt_in_request(contact=contact, source=ConsentSource.WEB_FORM, consent_text="Deals by text.")
    post(client, inbound_params("YES"))
    body = b"".join(admin_client.get("/contacts/consent-log.csv").streaming_content).decode()  # type: ignore[attr-defined]
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [(r["status"], r["source"]) for r in rows] == [("pending", "web_form"), ("subscribed", "double_opt_in")]
    assert all(r["consent_text"].startswith("Deals by text.") for r in rows)
