"""Reads of the outbound log that the sending engine and the pages share (the reports have ``reports.py``)."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Max

from .models import OutboundMessage


def last_numbers(*, contact_ids: Iterable[int], pool_values: Iterable[str]) -> dict[int, str]:
    """The pool number that last texted each contact: two queries for the whole batch (a sticky sender)."""
    ids = [i for i in contact_ids if i is not None]
    values = list(pool_values)
    if not ids or not values:
        return {}
    latest = (
        OutboundMessage.objects.filter(contact_id__in=ids, sender_kind="number", sender__in=values)
        .exclude(sent_at=None)
        .values("contact_id")
        .annotate(last_id=Max("id"))
        .values_list("last_id", flat=True)
    )
    return dict(OutboundMessage.objects.filter(id__in=list(latest)).values_list("contact_id", "sender"))
