"""``python manage.py process_campaigns [--campaign ID] [--batch N]``: the engine run for cron."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from campaigns import services
from campaigns.engine import DEFAULT_BATCH, RunSummary


class Command(BaseCommand):
    help = "Update campaign members from their segments, schedule first events and run every due event."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--campaign", type=int, help="Only this campaign id.")
        parser.add_argument(
            "--batch",
            type=int,
            default=DEFAULT_BATCH,
            help=f"Contacts per batch: one transaction, a few statements whatever its size (default {DEFAULT_BATCH}).",
        )
        parser.add_argument(
            "--stale-after",
            type=int,
            default=None,
            help="Seconds after which a log left running by a dead process is run again (default 600).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch"] < 1:
            self.stderr.write("--batch must be at least 1")
            raise SystemExit(2)
        stale = options["stale_after"]

        def progress(summary: RunSummary) -> None:
            self.stdout.write(
                f"batch {summary.batches}: {summary.executed} run, {summary.failed} failed, {summary.waiting} waiting"
            )
            self.stdout.flush()

        summary = services.campaigns_process(
            campaign_id=options["campaign"],
            batch=options["batch"],
            stale_after=dt.timedelta(seconds=stale) if stale is not None else None,
            on_batch=progress,
        )
        if summary is None:
            self.stdout.write("Another process_campaigns run is in progress; nothing done.")
            return
        self.stdout.write(
            f"Campaigns processed: {summary.members_added} members added, {summary.members_removed} removed, "
            f"{summary.scheduled} first events scheduled, {summary.executed} events run, {summary.failed} failed, "
            f"{summary.waiting} decisions waiting, {summary.timed_out} timed out, {summary.deferred} deferred to "
            f"their window, {summary.reset} stale claims reset."
        )
        self.stdout.write("SUMMARY " + json.dumps(summary.as_dict()))
