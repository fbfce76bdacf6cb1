"""Small things a marketer sees: each script once, plurals written as words."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from contacts.models import Contact, Segment

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("debug", [True, False])
def test_each_htmx_script_is_loaded_once(marketer_client: Client, settings: Any, debug: bool) -> None:
    settings.DEBUG = debug
    page = marketer_client.get("/").content.decode()
    assert page.count("django_htmx/htmx-2.min.js") == 1
    assert page.count("django_htmx/django-htmx.js") == (1 if debug else 0)


@pytest.mark.parametrize(("members", "words"), [(1, "1 member."), (2, "2 members.")])
def test_saving_a_segment_says_member_or_members(marketer_client: Client, members: int, words: str) -> None:
    for i in range(members):
        Contact.objects.create(first_name="Ann", mobile=f"+4479110{i:05d}")
    response = marketer_client.post(
        "/segments/new/",
        {
            "name": "Anns",
            "kind": "filter",
            "match": "all",
            "rules-field": ["first_name"],
            "rules-operator": ["equals"],
            "rules-value": ["Ann"],
        },
        follow=True,
    )
    assert f"Segment Anns saved: {words}" in response.content.decode()
    assert "member(s)" not in response.content.decode()
    assert Segment.objects.get().member_count == members


def test_bulk_actions_say_contact_or_contacts(marketer_client: Client) -> None:
    contacts = [Contact.objects.create(first_name=f"C{i}", mobile=f"+4479110{i:05d}") for i in range(2)]
    segment = Segment.objects.create(name="VIP")
    response = marketer_client.post(
        "/contacts/bulk/",
        {"ids": [c.pk for c in contacts], "action": "add_segment", "segment": segment.pk},
        follow=True,
    )
    assert "2 contacts added to VIP." in response.content.decode()
