"""One number, one contact (PostgreSQL, real concurrent connections), Do Not Contact history, the timeline."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connection

from contacts.models import Contact, DoNotContact, TimelineEvent
from contacts.services import OptOutProtected, contact_get_or_create_by_mobile, contact_is_dnc, dnc_add, dnc_remove

pytestmark = pytest.mark.django_db


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_number_one_contact_under_concurrent_inserts() -> None:
    spellings = ["+44 7911 123456", "07911 123456", "0044 7911 123456", "+44 (0)7911-123-456"] * 3
    barrier = threading.Barrier(len(spellings))
    results: list[int] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def create(raw: str) -> None:
        try:
            barrier.wait(timeout=30)
            contact, _ = contact_get_or_create_by_mobile(mobile=raw, country="GB")
            with lock:
                results.append(contact.pk)
        except BaseException as exc:  # reported below, with the thread's own error
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(raw,)) for raw in spellings]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    assert len(results) == len(spellings)
    assert len(set(results)) == 1
    assert Contact.objects.filter(mobile="+447911123456").count() == 1
    assert TimelineEvent.objects.filter(kind="contact.created").count() == 1


def test_mobile_unique_in_database(make_contact: Callable[..., Contact]) -> None:
    from django.db import IntegrityError, transaction

    make_contact(mobile="+33612345678")
    with pytest.raises(IntegrityError), transaction.atomic():
        Contact.objects.create(mobile="+33612345678")


def test_dnc_history_is_kept_and_on_the_timeline(make_contact: Callable[..., Contact]) -> None:
    contact = make_contact()
    entry, created = dnc_add(
        contact=contact, reason=DoNotContact.Reason.UNSUBSCRIBED, source=DoNotContact.Source.KEYWORD, comment="STOP"
    )
    assert created
    again, created_again = dnc_add(
        contact=contact, reason=DoNotContact.Reason.MANUAL, source=DoNotContact.Source.MARKETER
    )
    assert (again.pk, created_again) == (entry.pk, False)
    assert contact_is_dnc(contact=contact)
    # An opt-in keyword may not lift a marketer's block, only a keyword's.
    assert dnc_remove(contact=contact, source=DoNotContact.Source.KEYWORD, only_sources={"marketer"}) is False
    # The person's STOP is theirs: a marketer cannot lift it (issue 17), their own START can.
    with pytest.raises(OptOutProtected):
        dnc_remove(contact=contact, source=DoNotContact.Source.MARKETER, comment="asked by phone")
    assert contact_is_dnc(contact=contact)
    assert dnc_remove(contact=contact, source=DoNotContact.Source.KEYWORD, comment="START") is True
    assert not contact_is_dnc(contact=contact)
    dnc_add(contact=contact, reason=DoNotContact.Reason.BOUNCED, source=DoNotContact.Source.PROVIDER)
    history = list(DoNotContact.objects.filter(contact=contact).order_by("id").values_list("reason", "lifted_by"))
    assert history == [("unsubscribed", "keyword"), ("bounced", "")]
    kinds = list(
        TimelineEvent.objects.filter(contact=contact).order_by("occurred_at", "id").values_list("kind", flat=True)
    )
    assert kinds == ["dnc.added", "dnc.removed", "dnc.added"]
