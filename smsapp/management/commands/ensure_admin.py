"""Create the first admin user when there is none (used by ``make run``; idempotent)."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the first admin user (password from ADMIN_PASSWORD, or a random one printed once)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default=os.environ.get("ADMIN_USERNAME", "admin"))

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        if User.objects.filter(is_staff=True, is_active=True).exists():
            self.stdout.write("An admin user exists already; nothing to do.")
            return
        password = os.environ.get("ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=options["username"], email="", password=password)
        if os.environ.get("ADMIN_PASSWORD"):
            self.stdout.write(
                self.style.SUCCESS(f"Created admin user '{options['username']}' (password from ADMIN_PASSWORD).")
            )
        else:
            # Printed once, to the terminal of the person who ran make run; never logged.
            self.stdout.write(
                self.style.SUCCESS(f"Created admin user '{options['username']}' with password: {password}")
            )
            self.stdout.write("Write it down: it is not shown again.")
