"""Bounces: addresses that cannot receive, counted and suppressed with reason "bounced".

The sending pipeline reports each permanent address failure the provider gives (``ErrorKind.BAD_ADDRESS``: an
API refusal on send, a status callback, a reconciliation) through ``address_failures_record``, in batches as they
come (a status flush applies hundreds at once). The counts live by address (``AddressFailure``); an address that
reaches ``SMS_BAD_ADDRESS_FAILURES`` (default 2) is suppressed (``Suppression``, reason "bounced", source
"provider") and its contact, if it has one, is marked Do Not Contact with a timeline entry saying why. A marketer
may lift a bounce (the number was fixed or ported): lifting the suppression resets the count
(``contacts.suppression.suppression_lift_for``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .models import AddressFailure, Channel, Contact, DoNotContact, Suppression
from .selectors import ADDRESS_FIELD

# A comment names the failures that made the bounce: "<provider's explanation> (2 permanent failures)".
BOUNCE_COMMENT = "{explanation} ({count} permanent delivery failures of this address)"


@dataclass(frozen=True)
class AddressFailureReport:
    """One permanent failure: the address, its channel, the provider's code and its explanation (for the record)."""

    address: str
    code: str
    explanation: str = ""
    channel: str = Channel.SMS


def bad_address_threshold() -> int:
    """After how many permanent failures an address is suppressed (at least 1)."""
    return max(1, int(getattr(settings, "SMS_BAD_ADDRESS_FAILURES", 2)))


@transaction.atomic
def address_failures_record(*, failures: Iterable[AddressFailureReport]) -> list[tuple[str, str]]:
    """Count these failures (one upsert for all of them) and suppress the addresses that reach the threshold (one
    insert per channel and explanation, and one Do Not Contact mark for their contacts). Returns the (channel,
    address) pairs newly suppressed as bounced."""
    grouped: dict[tuple[str, str], list[AddressFailureReport]] = {}
    for failure in failures:
        if failure.address:
            grouped.setdefault((failure.channel, str(failure.address)), []).append(failure)
    if not grouped:
        return []
    counts = _count(grouped)
    threshold = bad_address_threshold()
    reached: dict[tuple[str, str], list[str]] = {}  # (channel, comment) -> addresses
    for key, total in counts.items():
        if total >= threshold:
            last = grouped[key][-1]
            comment = BOUNCE_COMMENT.format(explanation=last.explanation or f"Error {last.code}", count=total)
            reached.setdefault((key[0], comment[:500]), []).append(key[1])
    suppressed: list[tuple[str, str]] = []
    for (channel, comment), addresses in sorted(reached.items()):
        suppressed += [(channel, a) for a in _suppress(channel=channel, addresses=sorted(addresses), comment=comment)]
        field = ADDRESS_FIELD.get(channel)
        if field is not None:
            from .services import dnc_add_matching  # services import this module's neighbours

            dnc_add_matching(
                contacts=Contact.objects.filter(**{f"{field}__in": addresses}),
                reason=DoNotContact.Reason.BOUNCED,
                source=DoNotContact.Source.PROVIDER,
                channel=channel,
                comment=comment,
                announce=True,
            )
    return suppressed


def _count(grouped: dict[tuple[str, str], list[AddressFailureReport]]) -> dict[tuple[str, str], int]:
    """One ``INSERT … ON CONFLICT DO UPDATE`` adding each address's failures; the totals it returns. In key order,
    so two batches touching the same addresses lock them in the same order."""
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    keys = sorted(grouped)
    values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(keys))
    params: list[Any] = []
    for channel, address in keys:
        params += [channel, address, len(grouped[(channel, address)]), grouped[(channel, address)][-1].code[:32]]
        params += [now, now]
    table = AddressFailure._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (channel, address, failures, last_code, first_failed_at, last_failed_at) "  # noqa: S608
            f"VALUES {values} ON CONFLICT (channel, address) DO UPDATE SET "
            f"failures = {table}.failures + excluded.failures, last_code = excluded.last_code, "
            "last_failed_at = excluded.last_failed_at RETURNING channel, address, failures",
            params,
        )
        return {(str(c), str(a)): int(n) for c, a, n in cursor.fetchall()}


def _suppress(*, channel: str, addresses: list[str], comment: str) -> list[str]:
    """Suppress these addresses as bounced (an address suppressed already keeps its entry); those newly suppressed."""
    stamp = connection.ops.adapt_datetimefield_value(timezone.now())
    values = ", ".join(["(%s)"] * len(addresses))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Suppression._meta.db_table} (channel, address, reason, source, comment, created_at, "  # noqa: S608
            f"lifted_by, lifted_comment) SELECT %s, v.column1, %s, %s, %s, %s, '', '' "
            f"FROM (VALUES {values}) v WHERE true "
            "ON CONFLICT (channel, address) WHERE lifted_at IS NULL DO NOTHING RETURNING address",
            [channel, DoNotContact.Reason.BOUNCED, DoNotContact.Source.PROVIDER, comment, stamp, *addresses],
        )
        return sorted(str(row[0]) for row in cursor.fetchall())


def address_failures_reset_sql(*, channel: str, addresses_sql: str) -> str:
    """The UPDATE that zeroes the failure count of the addresses ``addresses_sql`` selects (a lifted bounce)."""
    return (
        f"UPDATE {AddressFailure._meta.db_table} SET failures = 0 "  # noqa: S608
        f"WHERE channel = '{channel}' AND address IN ({addresses_sql})"
    )
