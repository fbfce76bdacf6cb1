"""``manage.py simulate_reply``: a signed reply posted through fake_twilio reaches the callback and is acted on."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from contacts.models import Contact
from contacts.services import contact_is_dnc
from texts.models import InboundMessage

NUMBER = "+14155550123"


@pytest.fixture
def served(twilio_settings: Any, live_server: Any) -> Any:
    from texts.keywords import keyword_seed_defaults

    twilio_settings.PUBLIC_BASE_URL = live_server.url  # the URL fake_twilio signs is the one the app checks
    keyword_seed_defaults()  # a transactional test flushes the migration's keywords
    return twilio_settings


@pytest.mark.django_db(transaction=True)
def test_simulate_reply_stop_marks_the_contact_do_not_contact(served: Any, fake_twilio: Any) -> None:
    out = StringIO()
    call_command(
        "simulate_reply", "--from", NUMBER, "--body", "STOP", "--fake-twilio", fake_twilio.base_url, stdout=out
    )
    assert "HTTP 200" in out.getvalue()
    inbound = InboundMessage.objects.get()
    assert (inbound.from_number, inbound.body, inbound.action) == (NUMBER, "STOP", "opt_out")
    assert contact_is_dnc(contact=Contact.objects.get(mobile=NUMBER))
    # fake_twilio really posted it, signed, like Twilio.
    (sent,) = fake_twilio.inbound_sent()
    assert sent["params"]["From"] == NUMBER


@pytest.mark.django_db(transaction=True)
def test_simulate_reply_help_prints_the_answer(served: Any, fake_twilio: Any) -> None:
    out = StringIO()
    call_command(
        "simulate_reply", "--from", NUMBER, "--body", "HELP", "--fake-twilio", fake_twilio.base_url, stdout=out
    )
    assert "<Message>" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_simulate_reply_says_when_the_app_uses_other_credentials(served: Any, fake_twilio: Any) -> None:
    served.TWILIO_AUTH_TOKEN = "another-token-0123456789abcdef01"
    with pytest.raises(CommandError, match="refused fake_twilio's signature"):
        call_command("simulate_reply", "--from", NUMBER, "--fake-twilio", fake_twilio.base_url, stdout=StringIO())
    assert not InboundMessage.objects.exists()


@pytest.mark.django_db
def test_simulate_reply_says_when_fake_twilio_is_not_running(settings: Any) -> None:
    from smsapp.testing.services import free_port

    with pytest.raises(CommandError, match="is `make run` running"):
        call_command(
            "simulate_reply", "--from", NUMBER, "--fake-twilio", f"http://127.0.0.1:{free_port()}", stdout=StringIO()
        )
