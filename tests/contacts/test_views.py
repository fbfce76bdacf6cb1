"""The contacts UI through Django's test client: marketers use it, anonymous visitors are sent to log in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from contacts.forms import PAGE_SIZE
from contacts.importer import contact_import_run
from contacts.models import Contact, ContactImport, DoNotContact, Segment, SegmentMembership, TimelineEvent
from contacts.services import contact_is_dnc

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "url",
    ["/contacts/", "/contacts/new/", "/contacts/imports/", "/segments/", "/segments/new/"],
)
def test_anonymous_is_redirected_to_login(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.parametrize(
    "query", ["+44 7911 123456", "0044 7911 123456", "+44 (0)7911-123-456", "7911 123", "Ada", "lovelace", "ada@ex"]
)
def test_search_by_name_email_or_number_in_any_format(
    marketer_client: Client, make_contact: Callable[..., Contact], query: str
) -> None:
    make_contact(first_name="Ada", last_name="Lovelace", email="ada@example.com", mobile="+447911123456")
    make_contact(first_name="Bob", last_name="Other", email="bob@example.com", mobile="+33612345678")
    response = marketer_client.get("/contacts/", {"q": query})
    assert response.status_code == 200
    assert b"Ada Lovelace" in response.content
    assert b"Bob Other" not in response.content


def test_filter_by_segment_and_dnc(marketer_client: Client, make_contact: Callable[..., Contact]) -> None:
    ada, bob = make_contact(first_name="Ada"), make_contact(first_name="Bob")
    segment = Segment.objects.create(name="VIP")
    SegmentMembership.objects.create(segment=segment, contact=ada)
    DoNotContact.objects.create(contact=bob, reason="manual", source="marketer")
    in_segment = marketer_client.get("/contacts/", {"segment": segment.pk}).content
    assert b"Ada" in in_segment
    assert b"Bob" not in in_segment
    dnc = marketer_client.get("/contacts/", {"dnc": "yes"}).content
    assert b"Bob" in dnc
    assert b">Ada<" not in dnc


def test_keyset_pagination_walks_every_contact_once(marketer_client: Client) -> None:
    Contact.objects.bulk_create([Contact(first_name=f"P{i:03d}") for i in range(PAGE_SIZE * 2 + 5)])
    seen: list[str] = []
    url = "/contacts/"
    for _ in range(5):
        response = marketer_client.get(url)
        seen += [c.first_name for c in response.context["contacts"]]
        url = response.context["older_url"]
        if not url:
            break
        url = "/contacts/" + url
    assert len(seen) == PAGE_SIZE * 2 + 5
    assert len(set(seen)) == len(seen)
    back = marketer_client.get("/contacts/" + response.context["newer_url"])
    assert [c.first_name for c in back.context["contacts"]] == seen[PAGE_SIZE : PAGE_SIZE * 2]


def test_keyset_pages_of_a_segment_with_dnc_flags_walk_its_members_both_ways(marketer_client: Client) -> None:
    people = Contact.objects.bulk_create([Contact(first_name=f"P{i:03d}") for i in range(PAGE_SIZE * 3)])
    segment = Segment.objects.create(name="Odd ones")
    members = [p for i, p in enumerate(people) if i % 2]  # every other contact: the page bounds fall between members
    SegmentMembership.objects.bulk_create([SegmentMembership(segment=segment, contact=p) for p in members])
    DoNotContact.objects.bulk_create(
        [DoNotContact(contact=p, reason="manual", source="marketer") for p in members[::3]]
    )
    pages, url = [], f"/contacts/?segment={segment.pk}"
    for _ in range(5):
        response = marketer_client.get(url)
        pages.append(response.context["contacts"])
        if not response.context["older_url"]:
            break
        url = "/contacts/" + response.context["older_url"]
    walked = [c for page in pages for c in page]
    assert [c.pk for c in walked] == sorted((p.pk for p in members), reverse=True)
    assert {c.pk for c in walked if c.is_dnc} == {p.pk for p in members[::3]}
    back = marketer_client.get("/contacts/" + response.context["newer_url"]).context["contacts"]
    assert [(c.pk, c.is_dnc) for c in back] == [(c.pk, c.is_dnc) for c in pages[-2]]


def test_htmx_search_returns_the_partial(marketer_client: Client, make_contact: Callable[..., Contact]) -> None:
    make_contact(first_name="Ada")
    response = marketer_client.get("/contacts/", {"q": "Ada"}, HTTP_HX_REQUEST="true")
    assert b"<html" not in response.content
    assert b"Ada" in response.content


def test_create_contact_shows_invalid_number_back(marketer_client: Client) -> None:
    response = marketer_client.post("/contacts/new/", {"first_name": "Ada", "mobile": "12345", "country": "GB"})
    assert response.status_code == 200
    assert "“12345” is not a valid phone number for GB" in response.content.decode()
    assert not Contact.objects.exists()


def test_create_contact_reads_number_in_its_country_and_refuses_duplicates(marketer_client: Client) -> None:
    response = marketer_client.post(
        "/contacts/new/",
        {"first_name": "Ada", "mobile": "06 12 34 56 78", "country": "fr", "custom_fields_text": "plan = gold"},
    )
    contact = Contact.objects.get()
    assert response.status_code == 302
    assert (str(contact.mobile), contact.country, contact.timezone) == ("+33612345678", "FR", "Europe/Paris")
    assert contact.custom_fields == {"plan": "gold"}
    again = marketer_client.post("/contacts/new/", {"first_name": "Eve", "mobile": "+33 6 12 34 56 78"})
    assert "(read as +33612345678) already belongs to" in again.content.decode()
    assert Contact.objects.count() == 1


def test_edit_contact(marketer_client: Client, make_contact: Callable[..., Contact]) -> None:
    contact = make_contact(first_name="Ada")
    response = marketer_client.post(
        f"/contacts/{contact.pk}/edit/", {"first_name": "Adah", "mobile": str(contact.mobile), "country": "GB"}
    )
    assert response.status_code == 302
    contact.refresh_from_db()
    assert contact.first_name == "Adah"
    assert TimelineEvent.objects.filter(contact=contact, kind="contact.updated").exists()


def test_detail_dnc_add_and_lift(marketer_client: Client, make_contact: Callable[..., Contact]) -> None:
    contact = make_contact(first_name="Ada")
    marketer_client.post(f"/contacts/{contact.pk}/dnc/", {"reason": "unsubscribed", "comment": "asked by email"})
    assert contact_is_dnc(contact=contact)
    page = marketer_client.get(f"/contacts/{contact.pk}/").content.decode()
    assert "SMS Do Not Contact" in page
    assert "Lift Do Not Contact" in page
    assert "Do Not Contact (SMS): Unsubscribed" in page  # on the timeline
    marketer_client.post(f"/contacts/{contact.pk}/dnc/lift/", {"comment": "opted back in"})
    assert not contact_is_dnc(contact=contact)
    entry = DoNotContact.objects.get(contact=contact)
    assert (entry.lifted_by, entry.lifted_comment) == ("marketer", "opted back in")


def test_bulk_actions(marketer_client: Client, make_contact: Callable[..., Contact]) -> None:
    a, b = make_contact(), make_contact()
    segment = Segment.objects.create(name="Static")
    marketer_client.post("/contacts/bulk/", {"ids": [a.pk, b.pk], "action": "add_segment", "segment": segment.pk})
    segment.refresh_from_db()
    assert segment.member_count == 2
    marketer_client.post("/contacts/bulk/", {"ids": [a.pk], "action": "remove_segment", "segment": segment.pk})
    segment.refresh_from_db()
    assert segment.member_count == 1
    marketer_client.post("/contacts/bulk/", {"ids": [a.pk, b.pk], "action": "dnc"})
    assert contact_is_dnc(contact=a)
    assert contact_is_dnc(contact=b)
    response = marketer_client.post("/contacts/bulk/", {"ids": [a.pk], "action": "add_segment"}, follow=True)
    assert "Choose the segment." in response.content.decode()


def test_segment_editor_saves_rules_and_builds_membership(
    marketer_client: Client, make_contact: Callable[..., Contact]
) -> None:
    make_contact(last_name="Smith")
    make_contact(last_name="Jones")
    form = {
        "name": "Smiths",
        "kind": "filter",
        "match": "all",
        "rules-field": ["last_name"],
        "rules-operator": ["equals"],
        "rules-value": ["smith"],
        "rules-key": [""],
    }
    count = marketer_client.post("/segments/count/", form).content.decode()
    assert "<strong>1</strong> contact match" in count
    response = marketer_client.post("/segments/new/", form)
    assert response.status_code == 302
    segment = Segment.objects.get()
    assert segment.filters == {
        "match": "all",
        "rules": [{"field": "last_name", "operator": "equals", "value": "smith"}],
    }
    assert segment.member_count == 1
    listing = marketer_client.get("/segments/").content.decode()
    assert "Smiths" in listing
    rebuilt = marketer_client.post(f"/segments/{segment.pk}/rebuild/", follow=True).content.decode()
    assert "Smiths rebuilt: 0 joined, 0 left, 1 now." in rebuilt


def test_segment_editor_names_the_bad_rule(marketer_client: Client) -> None:
    form = {
        "name": "Broken",
        "kind": "filter",
        "match": "any",
        "rules-field": ["email", "custom", "created_at"],
        "rules-operator": ["contains", "equals", "before"],
        "rules-value": ["@x", "gold", "not-a-date"],
        "rules-key": ["", "plan", ""],
    }
    response = marketer_client.post("/segments/new/", form)
    assert response.status_code == 200
    assert "Rule 3: “not-a-date” is not a date" in response.content.decode()
    assert 'value="plan"' in response.content.decode()  # the rows are shown back as typed
    assert not Segment.objects.exists()
    count = marketer_client.post("/segments/count/", form).content.decode()
    assert "Rule 3" in count


def test_rule_row_follows_the_field(marketer_client: Client) -> None:
    row = marketer_client.get("/segments/rule-row/", {"rules-field": "created_at"}).content.decode()
    assert 'type="date"' in row
    assert "is before" in row
    assert "contains" not in row
    custom = marketer_client.get("/segments/rule-row/", {"rules-field": "custom"}).content.decode()
    assert "Custom field name" in custom


def test_import_through_the_ui(marketer_client: Client, settings: object, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path  # type: ignore[attr-defined]
    data = b"Name,Phone,Notes\nAda,+44 7911 123456,x\nBob,nope,y\n"
    response = marketer_client.post(
        "/contacts/imports/", {"file": SimpleUploadedFile("p.csv", data), "mode": "update", "region": "gb"}
    )
    record = ContactImport.objects.get()
    assert response["Location"] == reverse("contacts:import_detail", args=[record.pk])
    mapping_page = marketer_client.get(response["Location"]).content.decode()
    assert "Map the columns" in mapping_page
    form = {"col_0": "first_name", "col_1": "mobile", "col_2": ""}
    marketer_client.post(response["Location"], form)
    record.refresh_from_db()
    assert record.status == "queued"
    assert record.region == "GB"
    contact_import_run(contact_import_id=record.pk)  # what the worker does
    progress = marketer_client.get(f"/contacts/imports/{record.pk}/progress/").content.decode()
    assert "hx-trigger" not in progress  # finished: polling stops
    assert "“nope” is not a phone number" in progress
    assert Contact.objects.get().first_name == "Ada"


def test_upload_without_header_is_refused(marketer_client: Client, settings: object, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path  # type: ignore[attr-defined]
    response = marketer_client.post("/contacts/imports/", {"file": SimpleUploadedFile("e.csv", b""), "mode": "update"})
    assert response.status_code == 200
    assert not ContactImport.objects.exists()
    assert "empty" in response.content.decode()


def test_mapping_without_mobile_is_refused(marketer_client: Client, settings: object, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path  # type: ignore[attr-defined]
    marketer_client.post("/contacts/imports/", {"file": SimpleUploadedFile("p.csv", b"a,b\n1,2\n"), "mode": "skip"})
    record = ContactImport.objects.get()
    response = marketer_client.post(f"/contacts/imports/{record.pk}/", {"col_0": "first_name", "col_1": ""})
    assert "Map one column to the mobile number" in response.content.decode()
    record.refresh_from_db()
    assert record.status == "mapping"


@pytest.mark.parametrize(
    "model", ["contact", "donotcontact", "segment", "segmentmembership", "timelineevent", "contactimport"]
)
def test_admin_pages_open_for_support(make_contact: Callable[..., Contact], model: str) -> None:
    from django.contrib.auth.models import User

    admin_client = Client()
    admin_client.force_login(User.objects.create_superuser("support", "s@example.com", "x"))
    contact = make_contact(first_name="Ada")
    DoNotContact.objects.create(contact=contact, reason="manual", source="marketer")
    assert admin_client.get(f"/admin/contacts/{model}/").status_code == 200
    assert admin_client.get(f"/admin/contacts/contact/{contact.pk}/change/").status_code == 200
