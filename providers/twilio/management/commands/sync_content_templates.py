"""``manage.py sync_content_templates``: read the account's Content Templates from Twilio (the Content API, with each
template's WhatsApp approval) into the app, as the plugin page's "Sync templates" button does. Templates Twilio no
longer has are marked removed. Exits non-zero with Twilio's reason when it cannot read them."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from providers.base import ProviderError
from providers.twilio.services import content_templates_sync


class Command(BaseCommand):
    help = "Sync the Twilio account's Content Templates (names, languages, types, variables, WhatsApp approval)."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            summary = content_templates_sync()
        except ProviderError as exc:
            raise CommandError(f"Could not read the Content Templates from Twilio: {exc.message}") from None
        self.stdout.write(str(summary))
