"""Print a new API token for a user: ``python manage.py create_api_token USERNAME [--name NAME]``."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from smsapp.models import ApiToken


class Command(BaseCommand):
    help = "Create an API token for USERNAME and print it (it is stored hashed and cannot be shown again)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="command line")

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        try:
            user = User.objects.get(username=options["username"], is_active=True)
        except User.DoesNotExist:
            raise CommandError(f"No active user named {options['username']!r}.") from None
        _, plain = ApiToken.issue(user=user, name=options["name"])
        self.stdout.write(plain)
