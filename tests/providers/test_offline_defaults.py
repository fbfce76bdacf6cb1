"""`make run` works offline without writing Twilio credentials anywhere they would override the plugin page.

The local fake_twilio's development credentials stand in only while nothing is configured (TWILIO_USE_LOCAL_FAKE),
and the page says so; the first credentials an admin saves there take effect at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from providers.registry import get_provider
from providers.twilio.config import LOCAL_FAKE_NUMBER, get_config
from providers.twilio.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilio
from providers.twilio.services import twilio_settings_save

ROOT = Path(__file__).resolve().parent.parent.parent
REAL_SID = "AC" + "1" * 32
REAL_TOKEN = "f" * 32


def test_init_env_writes_no_twilio_credentials(settings: Any, tmp_path: Path) -> None:
    settings.BASE_DIR = tmp_path
    settings.TWILIO_ACCOUNT_SID = ""
    call_command("init_env")
    text = (tmp_path / ".env").read_text()
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM", "TWILIO_API_BASE_URL"):
        assert f"{name}=" not in text
    assert "TWILIO_USE_LOCAL_FAKE=true" in text
    assert "SECRET_KEY=" in text


OLD_ENV = f"""# Local development settings written by `make run`. Not committed (see .gitignore).
DEBUG=true
SECRET_KEY=kept-secret
PUBLIC_BASE_URL=http://127.0.0.1:8000
# Twilio: the local fake_twilio (make run starts it). Put real credentials here to send for real.
TWILIO_API_BASE_URL=http://127.0.0.1:8001
TWILIO_ACCOUNT_SID={DEFAULT_ACCOUNT_SID}
TWILIO_AUTH_TOKEN={DEFAULT_AUTH_TOKEN}
TWILIO_FROM=+15005550006
"""


def test_init_env_takes_the_old_fake_credentials_out_of_an_existing_env(settings: Any, tmp_path: Path) -> None:
    settings.BASE_DIR = tmp_path
    (tmp_path / ".env").write_text(OLD_ENV)
    call_command("init_env")
    text = (tmp_path / ".env").read_text()
    assert "TWILIO_ACCOUNT_SID" not in text
    assert "TWILIO_AUTH_TOKEN" not in text
    assert "TWILIO_FROM" not in text
    assert "TWILIO_API_BASE_URL" not in text
    assert "SECRET_KEY=kept-secret" in text
    assert "TWILIO_USE_LOCAL_FAKE=true" in text
    call_command("init_env")  # idempotent
    assert (tmp_path / ".env").read_text() == text


def test_init_env_keeps_real_credentials_someone_put_in_env(settings: Any, tmp_path: Path) -> None:
    settings.BASE_DIR = tmp_path
    (tmp_path / ".env").write_text(
        OLD_ENV.replace(f"TWILIO_ACCOUNT_SID={DEFAULT_ACCOUNT_SID}", f"TWILIO_ACCOUNT_SID={REAL_SID}")
    )
    call_command("init_env")
    assert f"TWILIO_ACCOUNT_SID={REAL_SID}" in (tmp_path / ".env").read_text()


@pytest.fixture
def local_fake(settings: Any) -> Iterator[FakeTwilio]:
    """`make run`'s situation: nothing configured, the flag on, fake_twilio on FAKE_TWILIO_PORT."""
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_API_KEY_SID", "TWILIO_API_KEY_SECRET"):
        setattr(settings, name, "")
    settings.TWILIO_FROM = ""
    settings.TWILIO_MESSAGING_SERVICE_SID = ""
    settings.TWILIO_API_BASE_URL = ""
    settings.SMS_PROVIDER = "twilio"
    settings.TWILIO_USE_LOCAL_FAKE = True
    server = FakeTwilio().start()  # the development credentials, on a free port
    settings.FAKE_TWILIO_PORT = server.port
    yield server
    server.stop()


@pytest.mark.django_db
def test_the_local_fake_is_used_only_until_credentials_are_saved_on_the_page(local_fake: FakeTwilio) -> None:
    config = get_config()
    assert config.local_fake
    assert (config.account_sid, config.auth_token) == (DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN)
    assert config.api_base_url == local_fake.base_url
    assert [s.sender.value for s in config.senders] == [LOCAL_FAKE_NUMBER]
    assert config.enabled
    # The official client really reaches the local server with those credentials.
    assert get_provider().check_connection().ok
    twilio_settings_save(
        data={
            "enabled": True,
            "account_sid": REAL_SID,
            "auth_token": REAL_TOKEN,
            "sender_type": "numbers",
            "sender_rate_per_second": 10,
            "direction": "both",
            "status_callbacks": True,
            "help_text": "Hi",
        },
        numbers=[{"phone_number": "+14155550100", "number_type": "long_code", "rate_per_second": 1}],
    )
    config = get_config()
    assert not config.local_fake
    assert (config.account_sid, config.auth_token) == (REAL_SID, REAL_TOKEN)
    assert config.api_base_url == ""  # Twilio itself, not the local server
    assert [s.sender.value for s in config.senders] == ["+14155550100"]


@pytest.mark.django_db
def test_the_plugin_page_says_the_local_server_is_in_use(local_fake: FakeTwilio, admin_client: Client) -> None:
    page = admin_client.get("/settings/plugins/twilio/").content.decode()
    assert "Sending through the local test server." in page
    assert local_fake.base_url in page
    response = admin_client.post(
        "/settings/plugins/twilio/",
        {
            "enabled": "on",
            "account_sid": REAL_SID,
            "auth_token": REAL_TOKEN,
            "sender_type": "numbers",
            "sender_rate_per_second": "10",
            "direction": "both",
            "status_callbacks": "on",
            "help_text": "Hi",
            "numbers-TOTAL_FORMS": "1",
            "numbers-INITIAL_FORMS": "0",
            "numbers-0-phone_number": "+14155550100",
            "numbers-0-number_type": "long_code",
            "numbers-0-rate_per_second": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    page = admin_client.get("/settings/plugins/twilio/").content.decode()
    assert "Sending through the local test server." not in page


def test_the_ports_are_settable_and_public_base_url_follows_the_web_port() -> None:
    procfile = (ROOT / "Procfile").read_text()
    assert "manage.py fake_twilio --port ${FAKE_TWILIO_PORT:-8001}" in procfile
    assert "runserver 127.0.0.1:${WEB_PORT:-8000}" in procfile
    assert "--inbound-url http://127.0.0.1:${WEB_PORT:-8000}/sms/twilio/callback" in procfile
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "smsapp.settings",
        "SMSAPP_IGNORE_DOTENV": "1",
        "DEBUG": "true",
        "WEB_PORT": "8123",
        "FAKE_TWILIO_PORT": "8124",
        "TWILIO_USE_LOCAL_FAKE": "true",
    }
    env.pop("PUBLIC_BASE_URL", None)
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "from providers.twilio.config import local_fake_url; "
        "print(settings.PUBLIC_BASE_URL, local_fake_url())"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["http://127.0.0.1:8123", "http://127.0.0.1:8124"]
