"""``manage.py reconcile_statuses``: ask the provider for the statuses whose callback never came (``texts.reconcile``).
Celery beat runs the same job every ``SMS_RECONCILE_INTERVAL_SECONDS``; the command is for cron and for an operator
after an outage."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from texts.reconcile import outbound_reconcile


def _not_negative(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value} is not allowed: it must be 0 or more")
    return number


class Command(BaseCommand):
    help = "Fetch from the provider the status of messages still 'sent' whose status callback never came."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, help="Ask about at most this many messages (SMS_RECONCILE_BATCH)")
        parser.add_argument(
            "--after",
            type=_not_negative,
            help="Only messages the provider was called for at least this many seconds ago "
            "(SMS_RECONCILE_AFTER_SECONDS)",
        )

    def handle(self, *args: Any, limit: int | None = None, after: float | None = None, **options: Any) -> None:
        if limit is not None and limit < 1:
            raise CommandError(f"--limit {limit} is not allowed: it must be 1 or more")
        result = outbound_reconcile(limit=limit, after=after)
        self.stdout.write(result.summary())
        if result.stopped:
            raise CommandError(f"stopped early: {result.stopped}")
