"""Bounces and protected opt-outs (issue 17 part B): permanent address failures counted per (channel, address),
suppression with reason "bounced" at ``SMS_BAD_ADDRESS_FAILURES``; a marketer may lift a bounce, nobody but the
person may lift a STOP: the contact page, the API, the admin, an import and a campaign action are each refused."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from contacts.bounces import AddressFailureReport, address_failures_record
from contacts.importer import Importer, auto_mapping, read_headers
from contacts.models import AddressFailure, Contact, DoNotContact, Suppression, TimelineEvent
from contacts.selectors import textable
from contacts.services import OptOutProtected, dnc_add, dnc_remove, dnc_remove_many, dnc_remove_matching
from smsapp.models import ApiToken

pytestmark = pytest.mark.django_db

LANDLINE, STOPPED, OTHER = "+14155552801", "+14155552802", "+14155552803"
PROTECTED_WORDS = "nobody can lift that opt-out"


def _fail(*addresses: str, code: str = "30006") -> list[tuple[str, str]]:
    return address_failures_record(
        failures=[AddressFailureReport(address=a, code=code, explanation=f"Twilio error {code}") for a in addresses]
    )


def _active(address: str) -> Suppression | None:
    return Suppression.objects.filter(channel="sms", address=address, lifted_at__isnull=True).first()


def _stopped() -> Contact:
    contact = Contact.objects.create(first_name="Sam", mobile=STOPPED)
    dnc_add(contact=contact, reason=DoNotContact.Reason.UNSUBSCRIBED, source=DoNotContact.Source.KEYWORD)
    return contact


@pytest.fixture
def superuser_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "x"))
    return client


@pytest.fixture
def api(marketer_user: User) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(user=marketer_user, name='tests')[1]}")


def test_an_address_is_suppressed_as_bounced_at_the_configured_count(settings: Any) -> None:
    settings.SMS_BAD_ADDRESS_FAILURES = 2
    contact = Contact.objects.create(first_name="Lan", mobile=LANDLINE)
    assert _fail(LANDLINE) == []
    assert _active(LANDLINE) is None
    assert AddressFailure.objects.get(address=LANDLINE).failures == 1
    assert _fail(LANDLINE) == [("sms", LANDLINE)]
    entry = _active(LANDLINE)
    assert entry is not None
    assert (entry.reason, entry.source) == ("bounced", "provider")
    assert "2 permanent delivery failures" in entry.comment
    dnc = DoNotContact.objects.get(contact=contact, lifted_at__isnull=True)
    assert (dnc.reason, dnc.source) == ("bounced", "provider")
    # The contact page's history: a timeline entry that says why.
    event = TimelineEvent.objects.get(contact=contact, kind="dnc.added")
    assert event.title == "Do Not Contact (SMS): Bounced"
    assert "Twilio error 30006" in event.detail["comment"]
    assert not Contact.objects.filter(textable(), pk=contact.pk).exists()
    assert _fail(LANDLINE) == []  # suppressed already: nothing new


def test_one_batch_counts_each_failure_and_the_threshold_is_a_setting(settings: Any) -> None:
    settings.SMS_BAD_ADDRESS_FAILURES = 3
    assert _fail(LANDLINE, LANDLINE, OTHER) == []
    assert dict(AddressFailure.objects.values_list("address", "failures")) == {LANDLINE: 2, OTHER: 1}
    assert _fail(LANDLINE, OTHER) == [("sms", LANDLINE)]  # an address nobody owns is suppressed all the same
    assert _active(OTHER) is None


def test_a_marketer_lifts_a_bounce_on_the_contact_page_and_the_count_starts_again(
    marketer_client: Client, settings: Any
) -> None:
    settings.SMS_BAD_ADDRESS_FAILURES = 2
    contact = Contact.objects.create(first_name="Lan", mobile=LANDLINE)
    _fail(LANDLINE, LANDLINE)
    page = marketer_client.get(f"/contacts/{contact.pk}/").content.decode()
    assert "Lift bounce" in page
    response = marketer_client.post(f"/contacts/{contact.pk}/dnc/lift/", {"comment": "ported to a mobile"})
    assert response.status_code == 302
    assert _active(LANDLINE) is None
    assert not DoNotContact.objects.filter(contact=contact, lifted_at__isnull=True).exists()
    assert AddressFailure.objects.get(address=LANDLINE).failures == 0
    assert _fail(LANDLINE) == []  # one new failure is not two
    assert Contact.objects.filter(textable(), pk=contact.pk).exists()


def test_a_marketer_lifts_a_bounce_through_the_api(api: Client, settings: Any) -> None:
    settings.SMS_BAD_ADDRESS_FAILURES = 1
    contact = Contact.objects.create(mobile=LANDLINE)
    _fail(LANDLINE)
    response = api.delete(f"/api/v1/contacts/{contact.pk}/dnc?comment=fixed")
    assert response.status_code == 200, response.content
    assert response.json()["dnc_sms"] is False
    assert _active(LANDLINE) is None


def test_the_contact_page_refuses_to_lift_a_stop_with_403_and_words(marketer_client: Client) -> None:
    contact = _stopped()
    page = marketer_client.get(f"/contacts/{contact.pk}/").content.decode()
    assert "Lift Do Not Contact" not in page
    assert "texting START" in page
    response = marketer_client.post(f"/contacts/{contact.pk}/dnc/lift/", {"comment": "they called"})
    assert response.status_code == 403
    assert PROTECTED_WORDS in response.content.decode()
    assert DoNotContact.objects.filter(contact=contact, lifted_at__isnull=True).exists()
    assert _active(STOPPED) is not None


def test_the_api_refuses_to_lift_a_stop_with_403_and_words(api: Client, admin_user: User) -> None:
    contact = _stopped()
    response = api.delete(f"/api/v1/contacts/{contact.pk}/dnc")
    assert response.status_code == 403
    body = response.json()
    assert PROTECTED_WORDS in body["errors"]["dnc"][0]
    admin_api = Client(HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(user=admin_user, name='admin')[1]}")
    assert admin_api.delete(f"/api/v1/contacts/{contact.pk}/dnc").status_code == 403  # not even an admin
    assert _active(STOPPED) is not None


def test_a_carriers_stop_report_is_protected_too(api: Client) -> None:
    contact = Contact.objects.create(mobile=STOPPED)
    dnc_add(contact=contact, reason=DoNotContact.Reason.UNSUBSCRIBED, source=DoNotContact.Source.PROVIDER)
    assert api.delete(f"/api/v1/contacts/{contact.pk}/dnc").status_code == 403
    with pytest.raises(OptOutProtected):
        dnc_remove(contact=contact, source=DoNotContact.Source.MARKETER)


def test_a_contact_that_inherits_a_stopped_number_cannot_be_lifted_either(api: Client) -> None:
    _stopped().delete()
    again = Contact.objects.create(mobile=STOPPED)  # marked at once, from the number's suppression
    assert DoNotContact.objects.filter(contact=again, lifted_at__isnull=True).exists()
    assert api.delete(f"/api/v1/contacts/{again.pk}/dnc").status_code == 403
    assert _active(STOPPED) is not None


def test_the_admin_has_no_way_to_lift_a_stop(superuser_client: Client) -> None:
    contact = _stopped()
    entry = DoNotContact.objects.get(contact=contact)
    suppression = _active(STOPPED)
    assert suppression is not None
    # No change form or delete for the records themselves …
    change = superuser_client.post(
        f"/admin/contacts/donotcontact/{entry.pk}/change/",
        {
            "contact": contact.pk,
            "channel": "sms",
            "reason": "manual",
            "source": "marketer",
            "lifted_at_0": "2026-01-01",
        },
    )
    assert change.status_code == 403
    assert (
        superuser_client.post(f"/admin/contacts/suppression/{suppression.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    # … and the list's lift action refuses with the reason.
    response = superuser_client.post(
        "/admin/contacts/donotcontact/",
        {"action": "lift_do_not_contact", "_selected_action": [entry.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert PROTECTED_WORDS in response.content.decode()
    entry.refresh_from_db()
    assert entry.lifted_at is None
    assert _active(STOPPED) is not None


def test_the_admin_lift_action_lifts_a_bounce(superuser_client: Client, settings: Any) -> None:
    settings.SMS_BAD_ADDRESS_FAILURES = 1
    contact = Contact.objects.create(mobile=LANDLINE)
    _fail(LANDLINE)
    entry = DoNotContact.objects.get(contact=contact)
    superuser_client.post(
        "/admin/contacts/donotcontact/", {"action": "lift_do_not_contact", "_selected_action": [entry.pk]}
    )
    entry.refresh_from_db()
    assert entry.lifted_at is not None
    assert _active(LANDLINE) is None


def test_an_import_saying_not_opted_out_keeps_the_stop() -> None:
    _stopped()
    data = f"first_name,mobile,dnc\nSam,{STOPPED},no\n".encode()
    importer = Importer(mapping=auto_mapping(read_headers(io.BytesIO(data))), on_errors=lambda errors: None)
    importer.run(io.BytesIO(data))
    contact = Contact.objects.get(mobile=STOPPED)
    assert DoNotContact.objects.filter(contact=contact, lifted_at__isnull=True, source="keyword").exists()
    assert _active(STOPPED) is not None


def test_set_based_lifts_a_campaign_makes_keep_stops_and_lift_the_rest() -> None:
    stopped = _stopped()
    marked = Contact.objects.create(mobile=OTHER)
    dnc_add(contact=marked, reason=DoNotContact.Reason.MANUAL, source=DoNotContact.Source.MARKETER)
    lifted = dnc_remove_matching(contacts=Contact.objects.filter(pk__in=[stopped.pk, marked.pk]), source="campaign")
    assert lifted == 1
    assert dnc_remove_many(contact_ids=[stopped.pk], source="marketer") == []
    assert DoNotContact.objects.filter(contact=stopped, lifted_at__isnull=True).exists()
    assert _active(STOPPED) is not None
    assert _active(OTHER) is None


def test_the_persons_own_start_still_lifts_their_stop() -> None:
    contact = _stopped()
    assert dnc_remove(contact=contact, source=DoNotContact.Source.KEYWORD, only_sources={"keyword"}) is True
    assert _active(STOPPED) is None


def test_api_lift_of_a_contact_without_dnc_is_still_200(api: Client) -> None:
    contact = Contact.objects.create(mobile=OTHER)
    response = api.delete(f"/api/v1/contacts/{contact.pk}/dnc")
    assert response.status_code == 200
    assert json.loads(response.content)["dnc_sms"] is False
