"""Login throttling (django-axes): wrong passwords pause logins by username and by address; an admin unlocks."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from .conftest import PASSWORD

pytestmark = pytest.mark.django_db


def _login(username: str, password: str, *, address: str = "203.0.113.7") -> Any:
    return Client(REMOTE_ADDR=address).post("/login/", {"username": username, "password": password})


def test_wrong_passwords_pause_the_account_even_with_the_right_one_after(admin_user: User, settings: Any) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login("ada", "wrong").status_code == 200  # the form again, "Please enter a correct username…"
    assert _login("ada", "wrong").status_code == 429  # the fifth pauses the account
    locked = _login("ada", PASSWORD)
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Too many failed logins" in page
    assert "paused for 15 minutes after 5 wrong passwords" in page
    assert "axes_reset_username ada" in page
    # By username: another address is refused too; by address: another username from here as well.
    assert _login("ada", PASSWORD, address="198.51.100.9").status_code == 429
    User.objects.create_user("bea", password=PASSWORD)
    assert _login("bea", PASSWORD).status_code == 429
    assert _login("bea", PASSWORD, address="192.0.2.1").status_code == 302


def test_an_admin_unlocks_with_the_command(admin_user: User, settings: Any) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login("ada", "wrong")
    assert _login("ada", PASSWORD).status_code == 429
    call_command("axes_reset_username", "ada")
    call_command("axes_reset_ip", "203.0.113.7")
    assert _login("ada", PASSWORD).status_code == 302


def test_a_success_clears_the_count(admin_user: User, settings: Any) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login("ada", "wrong")
    assert _login("ada", PASSWORD).status_code == 302
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login("ada", "wrong")
    assert _login("ada", PASSWORD).status_code == 302


def test_the_access_attempts_are_in_the_django_admin_for_unlocking(admin_user: User, settings: Any) -> None:
    admin_user.is_superuser = True
    admin_user.save()
    client = Client()
    client.force_login(admin_user)
    _login("eve", "guess")
    page = client.get("/admin/axes/accessattempt/")
    assert page.status_code == 200
    assert "eve" in page.content.decode()
