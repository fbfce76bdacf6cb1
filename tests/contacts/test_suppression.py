"""Suppression by address (issue 17): an opt-out is kept for the number itself and outlives the contact row."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.utils import timezone

from contacts.importer import Importer, auto_mapping, read_headers
from contacts.models import Contact, DoNotContact, Suppression, TimelineEvent
from contacts.selectors import contact_unreachable_reason, textable
from contacts.services import dnc_add, dnc_add_many, dnc_remove
from contacts.suppression import suppression_add
from smsapp.models import ApiToken
from texts.models import OutboundMessage, TextMessage
from texts.services.outbound import outbound_enqueue

pytestmark = pytest.mark.django_db

NUMBER = "+14155552301"
JSON = "application/json"


@pytest.fixture
def api(admin_user: User) -> Client:
    """An admin's API client: only admins delete contacts."""
    return Client(HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(user=admin_user, name='tests')[1]}")


def _opted_out(mobile: str = NUMBER) -> Contact:
    contact = Contact.objects.create(first_name="Sam", mobile=mobile)
    dnc_add(contact=contact, reason=DoNotContact.Reason.UNSUBSCRIBED, source=DoNotContact.Source.KEYWORD)
    return contact


def _active(address: str = NUMBER) -> list[Suppression]:
    return list(Suppression.objects.filter(channel="sms", address=address, lifted_at__isnull=True))


def test_an_opt_out_suppresses_the_number_itself() -> None:
    _opted_out()
    [entry] = _active()
    assert (entry.reason, entry.source) == ("unsubscribed", "keyword")


def test_a_set_based_opt_out_suppresses_every_number() -> None:
    contacts = Contact.objects.bulk_create(Contact(mobile=f"+1415555{i:04d}") for i in range(3))
    dnc_add_many(contact_ids=[c.pk for c in contacts], reason="manual", source="marketer")
    assert sorted(Suppression.objects.values_list("address", flat=True)) == sorted(str(c.mobile) for c in contacts)


def test_deleting_a_contact_never_deletes_its_opt_out_records() -> None:
    contact = _opted_out()
    entry_id = DoNotContact.objects.get(contact=contact).pk
    contact.delete()
    kept = DoNotContact.objects.get(pk=entry_id)
    assert kept.contact_id is None
    assert kept.is_active
    assert len(_active()) == 1


def test_a_recreated_contact_is_opted_out_at_once_and_its_history_says_why(api: Client) -> None:
    old = _opted_out()
    assert api.delete(f"/api/v1/contacts/{old.pk}").status_code == 204
    assert not Contact.objects.filter(pk=old.pk).exists()

    response = api.post("/api/v1/contacts", json.dumps({"mobile": NUMBER}), content_type=JSON)
    assert response.status_code == 201, response.content
    assert response.json()["dnc_sms"] is True
    again = Contact.objects.get(mobile=NUMBER)
    [entry] = DoNotContact.objects.filter(contact=again, lifted_at__isnull=True)
    assert (entry.reason, entry.source) == ("unsubscribed", "keyword")
    [why] = TimelineEvent.objects.filter(contact=again, kind="dnc.added")
    assert "opted out before" in why.detail["comment"]
    assert not Contact.objects.filter(textable(), pk=again.pk).exists()


def test_a_contact_edited_to_a_suppressed_number_is_opted_out(make_contact: Any) -> None:
    suppression_add(address=NUMBER, reason="bounced", source="provider")
    contact = make_contact(mobile="+14155550000")
    contact.mobile = NUMBER
    contact.save()
    assert DoNotContact.objects.get(contact=contact).reason == "bounced"


def test_a_reimported_number_that_opted_out_is_do_not_contact() -> None:
    _opted_out().delete()
    data = f"First name,Phone\nSam,{NUMBER}\nTia,+14155552302\n".encode()
    importer = Importer(mapping=auto_mapping(read_headers(io.BytesIO(data))), on_errors=lambda errors: None)
    importer.run(io.BytesIO(data))
    sam, tia = Contact.objects.get(mobile=NUMBER), Contact.objects.get(mobile="+14155552302")
    assert DoNotContact.objects.filter(contact=sam, lifted_at__isnull=True).exists()
    assert not DoNotContact.objects.filter(contact=tia).exists()
    assert TimelineEvent.objects.filter(contact=sam, kind="dnc.added").count() == 1


def test_nothing_is_queued_for_a_suppressed_number_even_before_its_contact_is_marked() -> None:
    # bulk_create sends no signal: the contact is not marked yet, the selector still refuses the number.
    suppression_add(address=NUMBER, reason="unsubscribed", source="keyword")
    [contact] = Contact.objects.bulk_create([Contact(mobile=NUMBER)])
    text = TextMessage.objects.create(name="Receipt", body="Hi", category="transactional")
    assert outbound_enqueue(text_message=text, contacts=[contact.pk], source="api") == 0
    assert contact_unreachable_reason(contact=contact) == "has a number that opted out of SMS"
    assert not OutboundMessage.objects.exists()


def test_start_lifts_the_inherited_opt_out_and_the_number_s() -> None:
    _opted_out().delete()
    again = Contact.objects.create(mobile=NUMBER)
    assert dnc_remove(contact=again, source="keyword", only_sources={"keyword"})
    assert _active() == []
    assert Suppression.objects.get(address=NUMBER).lifted_by == "keyword"


def test_an_opt_in_keyword_does_not_lift_a_number_a_carrier_blocked() -> None:
    contact = Contact.objects.create(mobile=NUMBER)
    dnc_add(contact=contact, reason="unsubscribed", source="provider")
    assert not dnc_remove(contact=contact, source="keyword", only_sources={"keyword"})
    assert len(_active()) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_migration_backfills_suppressions_from_active_do_not_contact_rows() -> None:
    before = [("contacts", "0004_drop_indexes_covered_by_composites")]
    after = [("contacts", "0005_suppression_by_address")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = MigrationExecutor(connection).loader.project_state(before).apps
    try:
        OldContact, OldDnc = old.get_model("contacts", "Contact"), old.get_model("contacts", "DoNotContact")
        stopped = OldContact.objects.create(mobile=NUMBER)
        lifted = OldContact.objects.create(mobile="+14155552302")
        OldDnc.objects.create(contact=stopped, channel="sms", reason="unsubscribed", source="keyword", comment="STOP")
        OldDnc.objects.create(contact=lifted, channel="sms", reason="manual", source="api", lifted_at=timezone.now())
        MigrationExecutor(connection).migrate(after)
        rows = list(Suppression.objects.values_list("address", "reason", "source", "comment", "lifted_at"))
        assert rows == [(NUMBER, "unsubscribed", "keyword", "STOP", None)]
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
