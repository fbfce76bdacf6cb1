"""``manage.py send_broadcasts``: cron's way to send segment (broadcast) text messages (Mautic's
``mautic:broadcasts:send``). Celery beat runs the same job every minute, so a crontab is optional."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from smsapp.core.cli import positive_int
from texts.models import TextMessage
from texts.reports import sending_progress
from texts.services.broadcasts import (
    DEFAULT_BATCH,
    BroadcastRun,
    broadcast_audience,
    broadcast_dry_run,
    broadcast_not_sendable_reason,
    broadcasts_due,
    broadcasts_send_all,
)

BAR_WIDTH = 30


class Command(BaseCommand):
    help = "Send published segment (broadcast) text messages to the contacts that have not received them yet."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--id", type=int, dest="text_message_id", help="Only this text message")
        parser.add_argument("--limit", type=positive_int, help="Queue at most this many messages in this run")
        parser.add_argument(
            "--batch",
            type=positive_int,
            default=DEFAULT_BATCH,
            help=f"Contacts per insert and per task ({DEFAULT_BATCH})",
        )
        parser.add_argument("--dry-run", action="store_true", help="Print who would receive it; send nothing")

    def handle(
        self,
        *args: Any,
        text_message_id: int | None = None,
        limit: int | None = None,
        batch: int = DEFAULT_BATCH,
        dry_run: bool = False,
        **options: Any,
    ) -> None:
        ids = None
        if text_message_id is not None:
            text = TextMessage.objects.filter(pk=text_message_id).first()
            if text is None:
                raise CommandError(f"There is no text message {text_message_id}.")
            reason = broadcast_not_sendable_reason(text)
            if reason:
                self.stdout.write(f"text message {text.pk} “{text.name}”: not sent, {reason}.")
                return
            ids = [text.pk]
        if dry_run:
            self._dry_run(ids, limit=limit, batch=batch)
            return
        # A progress bar only for a person watching; cron's log gets the one-line summaries.
        self._tty = self.stdout.isatty()
        try:
            runs = broadcasts_send_all(
                text_message_ids=ids,
                limit=limit,
                batch=batch,
                on_progress=self._progress if self._tty else None,
                on_result=self._result,
            )
        except Exception as exc:
            raise CommandError(f"send_broadcasts failed: {exc}") from exc
        if not runs:
            self.stdout.write("No broadcast is due.")

    def _progress(self, text: TextMessage, queued: int, target: int) -> None:
        done = min(1.0, queued / target) if target else 1.0
        filled = int(BAR_WIDTH * done)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        self.stdout.write(f"\r{text.name[:30]} [{bar}] {queued:,}/{target:,}", ending="")
        self.stdout.flush()

    def _result(self, run: BroadcastRun) -> None:
        if self._tty and run.batches:
            self.stdout.write("")  # end the progress bar's line
        self.stdout.write(run.summary())
        text = TextMessage.objects.filter(pk=run.text_message_id).first()
        if text is not None and not run.locked:
            # The workers send what was queued; where that stands and how long the senders' limits make it take.
            self.stdout.write(f"  sending: {sending_progress(text).sentence()}")

    def _dry_run(self, ids: list[int] | None, *, limit: int | None, batch: int) -> None:
        due = broadcasts_due()
        if ids is not None:
            due = due.filter(pk__in=ids)
        left = limit
        for text in due:
            audience = broadcast_audience(text_message=text)
            self.stdout.write(
                f"text message {text.pk} “{text.name}”: would send to {audience.will_receive} "
                f"(skipping {audience.dnc} Do Not Contact, {audience.no_consent} without marketing consent, "
                f"{audience.no_number} without a number, "
                + (f"{audience.outside_window} outside WhatsApp's 24-hour window, " if audience.outside_window else "")
                + f"{audience.already_sent} already sent)"
            )
            shown = 0
            for contact_id, mobile in broadcast_dry_run(text_message=text, limit=left, batch=batch):
                self.stdout.write(f"  contact {contact_id}\t{mobile}")
                shown += 1
            if left is not None:
                left -= shown
                if left <= 0:
                    break
        self.stdout.write("Dry run: nothing was queued.")
