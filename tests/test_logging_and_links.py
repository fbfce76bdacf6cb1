"""What the log and the pages show of ordinary refusals and of addresses that came from outside."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.test import Client

from smsapp.core.templatetags.links import web_url
from texts.models import InboundMessage

pytestmark = pytest.mark.django_db


def test_an_ordinary_403_logs_one_line_without_a_traceback(
    marketer_client: Client, caplog: pytest.LogCaptureFixture, settings: Any
) -> None:
    settings.DEBUG = False
    with caplog.at_level(logging.INFO):
        response = marketer_client.get("/settings/users/")
    assert response.status_code == 403
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in records] == ["Forbidden (Permission denied): /settings/users/"]
    assert records[0].exc_info is None
    assert "Traceback" not in caplog.text


def test_a_real_error_still_logs_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("django.request")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.error("Internal Server Error: /x", exc_info=True)
    assert caplog.records[-1].exc_info is not None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://api.twilio.com/x/Media/ME1", True),
        ("http://example.com/a.jpg", True),
        ("javascript:alert(document.cookie)", False),
        (" JavaScript:alert(1)", False),
        ("data:text/html;base64,PHNjcmlwdD4=", False),
        ("//evil.example/x", False),
        ("https:///nohost", False),
    ],
)
def test_only_web_addresses_become_links(url: str, shown: bool) -> None:
    assert bool(web_url(url)) is shown


def test_a_javascript_media_url_in_a_reply_is_not_a_link(marketer_client: Client) -> None:
    InboundMessage.objects.create(
        message_sid="SM" + "1" * 32,
        account_sid="AC" + "1" * 32,
        from_number="+14155550123",
        media_urls=["javascript:alert(document.cookie)", "https://api.twilio.com/m/ME2"],
    )
    page = marketer_client.get("/text-messages/replies/").content.decode()
    assert 'href="javascript:' not in page
    assert "media 1 (not a web address)" in page
    assert '<a href="https://api.twilio.com/m/ME2"' in page


def test_text_message_media_must_be_http(marketer_client: Client) -> None:
    response = marketer_client.post(
        "/text-messages/new/",
        {"name": "MMS", "body": "Hi", "language": "en", "media_urls_text": "ftp://example.com/a.jpg"},
    )
    assert "“ftp://example.com/a.jpg” is not an http(s) URL." in response.content.decode()


def test_a_403_is_one_line_on_the_console_in_debug_too(tmp_path: Any) -> None:
    # Found with DEBUG on: Django's own console handler printed the record (and its traceback) a second time.
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import django, logging; django.setup(); from django.core.exceptions import PermissionDenied\n"
        "try:\n    raise PermissionDenied('Only admins can open this page.')\n"
        "except PermissionDenied as exc:\n"
        "    logging.getLogger('django.request').warning('Forbidden (Permission denied): /settings/users/', "
        "exc_info=exc, extra={'status_code': 403})\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "smsapp.settings", "SMSAPP_IGNORE_DOTENV": "1", "DEBUG": "true"}
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, check=True)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert lines[0].endswith("WARNING django.request Forbidden (Permission denied): /settings/users/")
