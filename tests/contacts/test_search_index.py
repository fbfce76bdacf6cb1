"""The trigram indexes of contacts/0003 serve the SQL that ``contact_search`` really sends (PostgreSQL only)."""

from __future__ import annotations

import pytest
from django.db import connection

from contacts.models import Contact
from contacts.services import contact_search

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def plan(queryset: object) -> str:
    # Without the page's ORDER BY id: the question is whether the filter can use the indexes.
    sql, params = queryset.order_by().query.sql_with_params()  # type: ignore[attr-defined]
    with connection.cursor() as cursor:
        # A test table is tiny, so the planner would rightly read it whole: forbid that, to see whether the indexes
        # can serve the query at all (an expression that does not match the index would still need the table scan).
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_the_four_indexes_exist() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'contacts_contact'")
        names = {row[0] for row in cursor.fetchall()}
    assert {
        "contact_search_first_name",
        "contact_search_last_name",
        "contact_search_email",
        "contact_search_mobile",
    } <= names


def test_name_and_email_search_uses_the_trigram_indexes() -> None:
    Contact.objects.create(first_name="Ada", last_name="Lovelace", email="ada@example.com")
    text = plan(contact_search(queryset=Contact.objects.all(), text="lovel"))
    assert "contact_search_first_name" in text
    assert "contact_search_last_name" in text
    assert "contact_search_email" in text
    assert "Seq Scan" not in text


def test_part_of_a_number_uses_the_mobile_index() -> None:
    Contact.objects.create(first_name="Ada", mobile="+447911123456")
    queryset = contact_search(queryset=Contact.objects.all(), text="7911123")
    assert list(queryset.values_list("first_name", flat=True)) == ["Ada"]
    text = plan(queryset)
    assert "contact_search_mobile" in text
    assert "Seq Scan" not in text
