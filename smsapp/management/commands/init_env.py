"""Write a ``.env`` for local development when there is none (used by ``make run``; idempotent)."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

TEMPLATE = """# Local development settings written by `make run`. Not committed (see .gitignore).
DEBUG=true
SECRET_KEY={secret_key}
SMSAPP_ENCRYPTION_KEY={encryption_key}
PUBLIC_BASE_URL=http://127.0.0.1:8000
"""

# With no real credentials in the environment, point the official client at the local fake_twilio (the Procfile
# starts it on :8001 with these same development values), so that the product works offline.
FAKE_TWILIO = """# Twilio: the local fake_twilio (make run starts it). Put real credentials here to send for real.
TWILIO_API_BASE_URL=http://127.0.0.1:8001
TWILIO_ACCOUNT_SID={account_sid}
TWILIO_AUTH_TOKEN={auth_token}
TWILIO_FROM=+15005550006
"""


class Command(BaseCommand):
    help = "Write .env with a random SECRET_KEY for local development, unless it exists."

    def handle(self, *args: Any, **options: Any) -> None:
        path = settings.BASE_DIR / ".env"
        if path.exists():
            self.stdout.write(".env exists; leaving it as it is.")
            return
        text = TEMPLATE.format(secret_key=secrets.token_urlsafe(50), encryption_key=secrets.token_urlsafe(32))
        if not settings.TWILIO_ACCOUNT_SID:
            from providers.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN

            text += FAKE_TWILIO.format(account_sid=DEFAULT_ACCOUNT_SID, auth_token=DEFAULT_AUTH_TOKEN)
        path.write_text(text)
        path.chmod(0o600)
        self.stdout.write(self.style.SUCCESS("Wrote .env for local development."))
