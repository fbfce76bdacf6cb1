"""Marketing consent for test contacts, given as a user gives it: recorded through ``contacts.consent`` with the
API as its source, the service behind ``PATCH /api/v1/contacts/{id} {"sms_consent": true}``. Tests that send
marketing give their contacts consent first (``SMS_MARKETING_REQUIRES_CONSENT`` is on, as in production)."""

from __future__ import annotations

from collections.abc import Iterable

from contacts.consent import consent_record_matching
from contacts.models import ConsentSource, Contact


def give_consent(contacts: Iterable[Contact | int]) -> int:
    """Subscribe these contacts' numbers to SMS marketing in one set of statements; returns how many."""
    ids = sorted({c if isinstance(c, int) else c.pk for c in contacts})
    if not ids:
        return 0
    rows = Contact.objects.filter(pk__in=ids, mobile__isnull=False).exclude(mobile="")
    sql, params = rows.values("id", "mobile", "created_at").query.sql_with_params()
    columns = "x.id AS contact_id, x.mobile AS address, 'subscribed' AS status, x.created_at AS at"
    return consent_record_matching(
        rows_sql=f"SELECT {columns} FROM ({sql}) x",  # noqa: S608 - built from the ORM's own SQL
        params=params,
        source=ConsentSource.API,
        recorded_by="tests",
    )
