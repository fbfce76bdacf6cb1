"""Do Not Contact for many contacts at once: one statement, exactly one entry and one timeline entry each."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connection

from contacts.models import Contact, DoNotContact, TimelineEvent
from contacts.services import dnc_add, dnc_add_many, dnc_remove_many

pytestmark = pytest.mark.django_db


def test_marks_only_those_not_marked_yet_and_records_each_once(make_contact: Callable[..., Contact]) -> None:
    contacts = [make_contact() for _ in range(4)]
    dnc_add(contact=contacts[0], reason="unsubscribed", source="keyword")
    ids = [c.pk for c in contacts]
    assert dnc_add_many(contact_ids=ids + ids[:1], reason="manual", source="marketer", comment="bulk") == sorted(
        ids[1:]
    )
    assert dnc_add_many(contact_ids=ids, reason="manual", source="marketer") == []
    assert DoNotContact.objects.filter(lifted_at__isnull=True).count() == 4
    assert DoNotContact.objects.get(contact=contacts[0]).source == "keyword"  # the first reason is kept
    for contact in contacts:
        assert TimelineEvent.objects.filter(contact=contact, kind="dnc.added").count() == 1


def test_lifting_many_keeps_history_and_records_each_once(make_contact: Callable[..., Contact]) -> None:
    contacts = [make_contact() for _ in range(3)]
    dnc_add_many(contact_ids=[c.pk for c in contacts[:2]], reason="manual", source="marketer")
    assert dnc_remove_many(contact_ids=[c.pk for c in contacts], source="campaign") == sorted(
        c.pk for c in contacts[:2]
    )
    assert dnc_remove_many(contact_ids=[c.pk for c in contacts], source="campaign") == []
    assert DoNotContact.objects.filter(lifted_at__isnull=False, lifted_by="campaign").count() == 2
    assert TimelineEvent.objects.filter(kind="dnc.removed").count() == 2


def test_empty_input_does_nothing() -> None:
    assert dnc_add_many(contact_ids=[], reason="manual", source="marketer") == []
    assert dnc_remove_many(contact_ids=[], source="marketer") == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_bulk_marks_make_one_active_entry_each(make_contact: Callable[..., Contact]) -> None:
    ids = [make_contact().pk for _ in range(50)]
    results: list[list[int]] = []
    barrier = threading.Barrier(4)

    def mark() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(dnc_add_many(contact_ids=ids, reason="manual", source="api"))
        finally:
            connection.close()

    threads = [threading.Thread(target=mark) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(cid for result in results for cid in result) == sorted(ids)  # each contact marked by one caller
    assert DoNotContact.objects.filter(lifted_at__isnull=True).count() == 50
    assert TimelineEvent.objects.filter(kind="dnc.added").count() == 50
