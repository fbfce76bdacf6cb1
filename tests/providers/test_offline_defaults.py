"""`make run` works offline: init_env points the app at fake_twilio unless real credentials are configured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management import call_command

from providers.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN

ROOT = Path(__file__).resolve().parent.parent.parent


def test_init_env_points_at_fake_twilio_without_real_credentials(settings: Any, tmp_path: Path) -> None:
    settings.BASE_DIR = tmp_path
    settings.TWILIO_ACCOUNT_SID = ""
    call_command("init_env")
    text = (tmp_path / ".env").read_text()
    assert "TWILIO_API_BASE_URL=http://127.0.0.1:8001" in text
    assert f"TWILIO_ACCOUNT_SID={DEFAULT_ACCOUNT_SID}" in text
    assert f"TWILIO_AUTH_TOKEN={DEFAULT_AUTH_TOKEN}" in text
    assert "TWILIO_FROM=+15005550006" in text
    # The Procfile starts the server on that port, with the same default credentials.
    procfile = (ROOT / "Procfile").read_text()
    assert "manage.py fake_twilio --port 8001" in procfile


def test_init_env_leaves_real_credentials_alone(settings: Any, tmp_path: Path) -> None:
    settings.BASE_DIR = tmp_path
    settings.TWILIO_ACCOUNT_SID = "AC" + "1" * 32
    call_command("init_env")
    assert "TWILIO_API_BASE_URL" not in (tmp_path / ".env").read_text()
