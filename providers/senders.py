"""Choosing the sender of each message among a provider's configured senders.

- A number pool is sticky per contact: the number that last texted the contact, else a stable hash of the contact,
  so a contact always hears from (and replies to) the same number.
- A messaging service: the provider picks the number; we pass the service's id.
- An alphanumeric sender ID where the provider says it reaches the contact's country; elsewhere a number from the
  pool if there is one (the provider's configuration lists the pool's numbers after the alphanumeric ID for this),
  else ``NoSender`` saying what to configure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Protocol

from .base import Sender


class SenderRules(Protocol):
    """What the provider knows of where its senders reach (``base.Provider`` has both)."""

    label: str

    def sender_reaches(self, sender: Sender, country: str) -> bool: ...


class NoSender(Exception):
    """No configured sender can text this recipient; the message says what to configure."""


def stable_pick(pool: Sequence[Any], key: str) -> Any:
    digest = hashlib.sha256(key.encode()).digest()
    return pool[int.from_bytes(digest[:8], "big") % len(pool)]


def sender_rules() -> SenderRules:
    """The rules of the provider that sends (``SMS_PROVIDER``)."""
    from .registry import get_provider

    return get_provider()


def choose_sender(
    *,
    senders: Sequence[Any],
    contact_id: int | None,
    to_number: str,
    country: str,
    last: str = "",
    rules: SenderRules | None = None,
) -> Any:
    """The ``SenderConfig`` for one recipient. ``senders`` is the provider's ``config.senders``; ``rules`` default to
    the sending provider's (a caller choosing for many recipients passes them once)."""
    if not senders:
        raise NoSender("No sender is configured: add a number, a Messaging Service or an alphanumeric ID.")
    service = [s for s in senders if s.sender.kind == "messaging_service"]
    if service:
        return service[0]
    numbers = [s for s in senders if s.sender.kind == "number"]
    alphanumeric = [s for s in senders if s.sender.kind == "alphanumeric"]
    if alphanumeric:
        rules = rules or sender_rules()
        if rules.sender_reaches(alphanumeric[0].sender, country):
            return alphanumeric[0]
        if not numbers:
            raise NoSender(
                f"Alphanumeric sender IDs cannot text numbers in {country or 'this country'}: add a phone number to "
                f"the pool on the {rules.label} page, and contacts there get one of its numbers instead."
            )
    if not numbers:
        raise NoSender("No sender is configured: add a number, a Messaging Service or an alphanumeric ID.")
    by_value = {s.sender.value: s for s in numbers}
    if last in by_value:
        return by_value[last]
    return stable_pick(numbers, str(contact_id) if contact_id is not None else to_number)
