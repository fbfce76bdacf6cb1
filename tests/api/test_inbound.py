"""API: inbound messages (list with contact and time filters, read)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from contacts.models import Contact
from texts.models import InboundMessage

from .conftest import ApiClient

pytestmark = pytest.mark.django_db


def test_inbound_list_filters_by_contact_and_time(api: ApiClient) -> None:
    ann = Contact.objects.create(mobile="+447911000001")
    bob = Contact.objects.create(mobile="+447911000002")

    def received(contact: Contact, body: str, sid: str) -> int:
        row = InboundMessage.objects.create(
            message_sid=sid, account_sid="AC1", from_number=str(contact.mobile), body=body, contact=contact
        )
        return int(row.pk)

    first = received(ann, "STOP", "SM1")
    InboundMessage.objects.filter(pk=first).update(received_at=timezone.now() - dt.timedelta(days=2))
    second = received(bob, "Hello", "SM2")
    third = received(ann, "Thanks", "SM3")
    page = api.get("/api/v1/inbound-messages", {"limit": 2}).json()
    assert [m["id"] for m in page["items"]] == [third, second]
    rest = api.get("/api/v1/inbound-messages", {"cursor": page["next_cursor"]}).json()
    assert [m["id"] for m in rest["items"]] == [first]
    assert [m["id"] for m in api.get("/api/v1/inbound-messages", {"contact": ann.pk}).json()["items"]] == [
        third,
        first,
    ]
    since = (timezone.now() - dt.timedelta(days=1)).isoformat()
    assert [m["id"] for m in api.get("/api/v1/inbound-messages", {"since": since}).json()["items"]] == [third, second]
    one = api.get(f"/api/v1/inbound-messages/{second}").json()
    assert (one["body"], one["contact_id"], one["from_number"]) == ("Hello", bob.pk, "+447911000002")
    assert api.get(f"/api/v1/inbound-messages/{third + 1}").status_code == 404
    assert api.get("/api/v1/inbound-messages", {"contact": "x"}).status_code == 400
