"""``manage.py reconcile_statuses``: ask the provider for the statuses whose callback never came (``texts.reconcile``).
Celery beat runs the same job every ``SMS_RECONCILE_INTERVAL_SECONDS``; the command is for cron and for an operator
after an outage."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from smsapp.core.cli import non_negative_float, positive_int
from texts.reconcile import outbound_reconcile


class Command(BaseCommand):
    help = "Fetch from the provider the status of messages still 'sent' whose status callback never came."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--limit", type=positive_int, help="Ask about at most this many messages (SMS_RECONCILE_BATCH)"
        )
        parser.add_argument(
            "--after",
            type=non_negative_float,
            help="Only messages the provider was called for at least this many seconds ago "
            "(SMS_RECONCILE_AFTER_SECONDS)",
        )
        parser.add_argument(
            "--no-prices",
            action="store_true",
            help="Only statuses and unknown messages: ask for no price (after an outage, when statuses are urgent)",
        )

    def handle(
        self, *args: Any, limit: int | None = None, after: float | None = None, no_prices: bool = False, **options: Any
    ) -> None:
        result = outbound_reconcile(limit=limit, after=after, prices=not no_prices)
        self.stdout.write(result.summary())
        if result.stopped:
            raise CommandError(f"stopped early: {result.stopped}")
