"""Who can be texted: one definition (contacts.selectors) in the three shapes its callers use, which must agree."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection

from contacts.models import Contact, DoNotContact
from contacts.selectors import contact_unreachable_reason, textable, textable_sql
from contacts.services import dnc_add, dnc_remove

pytestmark = pytest.mark.django_db


@pytest.fixture
def crowd(make_contact: Callable[..., Contact]) -> dict[str, Contact]:
    people = {
        "ok": make_contact(),
        "no_number": make_contact(mobile=None),
        "dnc": make_contact(),
        "dnc_lifted": make_contact(),
    }
    for name in ("dnc", "dnc_lifted"):
        dnc_add(contact=people[name], reason=DoNotContact.Reason.MANUAL, source=DoNotContact.Source.MARKETER)
    dnc_remove(contact=people["dnc_lifted"], source=DoNotContact.Source.MARKETER)
    return people


def test_the_filter_the_sql_and_the_reason_agree(crowd: dict[str, Contact]) -> None:
    by_filter = set(Contact.objects.filter(textable()).values_list("pk", flat=True))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT c.id FROM {Contact._meta.db_table} c WHERE {textable_sql(alias='c')}")  # noqa: S608
        by_sql = {row[0] for row in cursor.fetchall()}
    by_reason = {c.pk for c in crowd.values() if not contact_unreachable_reason(contact=c)}

    assert by_filter == by_sql == by_reason == {crowd["ok"].pk, crowd["dnc_lifted"].pk}


def test_the_reason_says_what_stands_in_the_way(crowd: dict[str, Contact]) -> None:
    assert contact_unreachable_reason(contact=crowd["no_number"]) == "has no mobile number"
    assert contact_unreachable_reason(contact=crowd["dnc"]) == "is Do Not Contact for SMS"
    assert contact_unreachable_reason(contact=crowd["ok"]) == ""


def test_the_sql_bounds_the_do_not_contact_lookup_after_a_keyset_position(crowd: dict[str, Contact]) -> None:
    assert "d.contact_id > %(after)s" in textable_sql(alias="c", after="%(after)s")
    assert "d.contact_id >" not in textable_sql(alias="c")
