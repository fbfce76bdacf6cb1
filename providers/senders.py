"""Choosing the sender of each message from the plugin configuration.

- A number pool is sticky per contact: the number that last texted the contact, else a stable hash of the contact,
  so a contact always hears from (and replies to) the same number.
- A Messaging Service: Twilio picks the number; we pass the service SID.
- An alphanumeric sender ID where the contact's country accepts one; elsewhere a number from the pool if there is one
  (``providers.config`` lists the pool's numbers after the alphanumeric ID for this), else ``NoSender`` saying so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from django.db.models import Max

from .models import OutboundMessage

# Countries where Twilio documents alphanumeric sender IDs as unsupported (the NANP countries and a few others):
# messages there need a number.
ALPHANUMERIC_UNSUPPORTED = frozenset(
    {"US", "CA", "PR", "VI", "GU", "AS", "MP", "UM", "BR", "CL", "CN", "CO", "CR", "EC", "GT", "NI", "SV", "UY"}
)


class NoSender(Exception):
    """No configured sender can text this recipient; the message says what to configure."""


def alphanumeric_allowed(country: str) -> bool:
    return bool(country) and country.upper() not in ALPHANUMERIC_UNSUPPORTED


def stable_pick(pool: Sequence[Any], key: str) -> Any:
    digest = hashlib.sha256(key.encode()).digest()
    return pool[int.from_bytes(digest[:8], "big") % len(pool)]


def last_numbers(*, contact_ids: Iterable[int], pool_values: Iterable[str]) -> dict[int, str]:
    """The pool number that last texted each contact: two queries for the whole batch."""
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


def choose_sender(
    *, senders: Sequence[Any], contact_id: int | None, to_number: str, country: str, last: str = ""
) -> Any:
    """The ``SenderConfig`` for one recipient. ``senders`` is ``providers.config.get_config().senders``."""
    if not senders:
        raise NoSender("No sender is configured: add a number, a Messaging Service or an alphanumeric ID.")
    service = [s for s in senders if s.sender.kind == "messaging_service"]
    if service:
        return service[0]
    numbers = [s for s in senders if s.sender.kind == "number"]
    alphanumeric = [s for s in senders if s.sender.kind == "alphanumeric"]
    if alphanumeric and alphanumeric_allowed(country):
        return alphanumeric[0]
    if not numbers:
        raise NoSender(
            f"Alphanumeric sender IDs cannot text numbers in {country or 'this country'}: add a phone number to the "
            "pool on the Twilio page, and contacts there get one of its numbers instead."
        )
    by_value = {s.sender.value: s for s in numbers}
    if last in by_value:
        return by_value[last]
    return stable_pick(numbers, str(contact_id) if contact_id is not None else to_number)
