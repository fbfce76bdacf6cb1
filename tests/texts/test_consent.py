"""Marketing consent (issue 17): marketing only to subscribed numbers, transactional to anyone not opted out, enforced
at enqueue, fan-out and claim; the API reads and writes ``sms_consent``; the contact page and the admins' CSV show
every event with its source."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from contacts.consent import consent_record
from contacts.models import Contact, Segment
from contacts.services import segment_add_contacts
from smsapp.models import ApiToken
from texts.models import OutboundMessage, Status, TextMessage
from texts.services import broadcasts
from texts.services import dispatch as services
from texts.services.outbound import outbound_enqueue

from .conftest import Pipeline

pytestmark = pytest.mark.django_db
JSON = "application/json"


def _api(user: User) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(user=user, name='tests')[1]}")


def _subscribe(api: Client, contact: Contact, subscribed: bool = True) -> dict[str, Any]:
    response = api.patch(f"/api/v1/contacts/{contact.pk}", json.dumps({"sms_consent": subscribed}), content_type=JSON)
    assert response.status_code == 200, response.content
    return dict(response.json())


def test_the_api_writes_and_reads_sms_consent(marketer_user: User) -> None:
    api = _api(marketer_user)
    created = api.post("/api/v1/contacts", json.dumps({"mobile": "+14155552301"}), content_type=JSON).json()
    assert created["sms_consent"] == {"status": "never", "at": None, "source": ""}
    contact = Contact.objects.get(pk=created["id"])
    subscribed = _subscribe(api, contact)["sms_consent"]
    assert (subscribed["status"], subscribed["source"]) == ("subscribed", "api")
    assert subscribed["at"]
    assert _subscribe(api, contact, False)["sms_consent"]["status"] == "unsubscribed"
    [listed] = api.get("/api/v1/contacts").json()["items"]
    assert listed["sms_consent"]["status"] == "unsubscribed"
    bad = api.patch(f"/api/v1/contacts/{contact.pk}", json.dumps({"sms_consent": "maybe"}), content_type=JSON)
    assert bad.status_code == 400
    no_number = api.post(
        "/api/v1/contacts", json.dumps({"email": "a@example.com", "sms_consent": True}), content_type=JSON
    )
    assert no_number.status_code == 400
    assert "sms_consent" in no_number.json()["errors"]
    assert not Contact.objects.filter(email="a@example.com").exists()  # nothing half-made


def test_a_broadcast_skips_never_consented_contacts_and_reports_how_many(
    marketer_user: User, make_contact: Callable[..., Contact]
) -> None:
    contacts = [make_contact(sms_consent=False) for _ in range(3)]
    _subscribe(_api(marketer_user), contacts[0])
    segment = Segment.objects.create(name="All")
    segment_add_contacts(segment=segment, contact_ids=[c.pk for c in contacts])
    text = TextMessage.objects.create(name="Sale", body="20% off")
    text.segments.set([segment])
    assert broadcasts.broadcast_audience(text_message=text).no_consent == 2
    run = broadcasts.broadcast_send(text_message=text, enqueue=lambda ids: None)
    assert (run.queued, run.no_consent) == (1, 2)
    assert "2 without marketing consent" in run.summary()
    assert list(OutboundMessage.objects.values_list("contact_id", flat=True)) == [contacts[0].pk]


def test_transactional_goes_to_anyone_not_opted_out(
    transactional_text: TextMessage, make_contact: Callable[..., Contact]
) -> None:
    contact = make_contact(sms_consent=False)
    assert outbound_enqueue(text_message=transactional_text, contacts=[contact.pk], source="api") == 1


def test_marketing_to_all_when_consent_is_not_required(
    settings: Any, marketing_text: TextMessage, make_contact: Callable[..., Contact]
) -> None:
    contact = make_contact(sms_consent=False)
    assert outbound_enqueue(text_message=marketing_text, contacts=[contact.pk], source="campaign") == 0
    settings.SMS_MARKETING_REQUIRES_CONSENT = False
    assert outbound_enqueue(text_message=marketing_text, contacts=[contact.pk], source="campaign") == 1


def test_the_api_refuses_marketing_to_a_contact_without_consent(
    marketer_user: User, marketing_text: TextMessage, make_contact: Callable[..., Contact]
) -> None:
    contact = make_contact(sms_consent=False)
    api = _api(marketer_user)
    url = f"/api/v1/text-messages/{marketing_text.pk}/send"
    refused = api.post(url, json.dumps({"contact_id": contact.pk}), content_type=JSON)
    assert refused.status_code == 409
    assert "has not consented to marketing texts" in str(refused.json())
    _subscribe(api, contact)
    assert api.post(url, json.dumps({"contact_id": contact.pk}), content_type=JSON).status_code == 202


def test_consent_withdrawn_after_queueing_is_checked_at_claim_time(
    pipeline: Pipeline, marketing_text: TextMessage, make_contact: Callable[..., Contact], settings: Any
) -> None:
    settings.SMS_QUIET_HOURS_START, settings.SMS_QUIET_HOURS_END = "00:00", "23:59"
    contact = make_contact()
    consent_record(contact=contact, status="subscribed", source="api")
    assert outbound_enqueue(text_message=marketing_text, contacts=[contact.pk], source="campaign") == 1
    consent_record(contact=contact, status="unsubscribed", source="marketer")
    [pk] = OutboundMessage.objects.values_list("pk", flat=True)
    outcome = services.outbound_process_batch(message_ids=[pk], **pipeline.kwargs())
    assert outcome.failed == [pk]
    assert pipeline.provider.requests == []
    row = OutboundMessage.objects.get(pk=pk)
    assert (row.status, row.error_code) == (Status.FAILED, "no_consent")


def test_an_older_decision_never_overwrites_a_newer_one(make_contact: Callable[..., Contact]) -> None:
    import datetime as dt

    from django.utils import timezone

    from contacts.consent import consent_state

    contact = make_contact(sms_consent=False)
    consent_record(contact=contact, status="unsubscribed", source="keyword")
    consent_record(contact=contact, status="subscribed", source="import", at=timezone.now() - dt.timedelta(days=365))
    assert consent_state(address=str(contact.mobile)).status == "unsubscribed"
    assert contact.consent_events.count() == 2  # logged all the same


def test_the_consent_csv_holds_every_event_with_its_source(
    admin_client: Client, marketer_client: Client, make_contact: Callable[..., Contact]
) -> None:
    ann, bob = make_contact(first_name="Ann", sms_consent=False), make_contact(first_name="Bob", sms_consent=False)
    consent_record(contact=ann, status="subscribed", source="web_form", consent_text="Yes, text me offers")
    consent_record(contact=bob, status="subscribed", source="api", recorded_by="API: mark")
    consent_record(contact=ann, status="unsubscribed", source="keyword")
    url = reverse("contacts:consent_log_csv")
    assert marketer_client.get(url).status_code == 403
    response = admin_client.get(url)
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["contact_name"], r["status"], r["source"]) for r in rows] == [
        ("Ann", "subscribed", "web_form"),
        ("Bob", "subscribed", "api"),
        ("Ann", "unsubscribed", "keyword"),
    ]
    assert rows[0]["consent_text"] == "Yes, text me offers"
    assert rows[1]["recorded_by"] == "API: mark"


def test_the_contact_page_shows_the_consent_history(
    marketer_client: Client, make_contact: Callable[..., Contact]
) -> None:
    contact = make_contact(sms_consent=False)
    consent_record(contact=contact, status="subscribed", source="web_form", consent_text="Text me offers")
    page = marketer_client.get(reverse("contacts:contact_detail", args=[contact.pk])).content.decode()
    assert "SMS marketing consent" in page
    assert "Subscribed (Web form)" in page
    assert "Text me offers" in page


def test_an_import_takes_sms_consent_and_its_timestamp(make_contact: Callable[..., Contact]) -> None:
    from contacts.consent import consent_state
    from contacts.importer import Importer, auto_mapping, read_headers

    data = (
        b"Phone,SMS consent,Consent date\n"
        b"+14155552301,yes,2025-03-01T10:00:00+00:00\n"
        b"+14155552302,no,\n"
        b"+14155552303,,\n"
        b"+14155552304,perhaps,\n"
        b"+14155552305,yes,2025-02-31\n"
    )
    errors: list[tuple[int, str]] = []
    mapping = auto_mapping(read_headers(io.BytesIO(data)))
    assert sorted(mapping.values()) == ["mobile", "sms_consent", "sms_consent_at"]
    Importer(mapping=mapping, on_errors=errors.extend).run(io.BytesIO(data))
    assert [n for n, _ in errors] == [5, 6]  # the bad word and the day that does not exist, each with its row
    yes = consent_state(address="+14155552301")
    assert (yes.status, yes.source, yes.at.isoformat() if yes.at else "") == (
        "subscribed",
        "import",
        "2025-03-01T10:00:00+00:00",
    )
    assert consent_state(address="+14155552302").status == "unsubscribed"
    assert consent_state(address="+14155552303").status == "never"
    assert Contact.objects.get(mobile="+14155552301").consent_events.get().recorded_by.startswith("Import of")
