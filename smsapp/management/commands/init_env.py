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


class Command(BaseCommand):
    help = "Write .env with a random SECRET_KEY for local development, unless it exists."

    def handle(self, *args: Any, **options: Any) -> None:
        path = settings.BASE_DIR / ".env"
        if path.exists():
            self.stdout.write(".env exists; leaving it as it is.")
            return
        path.write_text(TEMPLATE.format(secret_key=secrets.token_urlsafe(50), encryption_key=secrets.token_urlsafe(32)))
        path.chmod(0o600)
        self.stdout.write(self.style.SUCCESS("Wrote .env for local development."))
