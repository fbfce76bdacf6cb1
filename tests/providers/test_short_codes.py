"""A short code written as Twilio writes it (``55501``) is a short code, not an alphanumeric sender ID."""

from __future__ import annotations

from typing import Any

import pytest

from providers.senders import choose_sender
from providers.twilio.config import get_config
from providers.twilio.forms import SenderNumberForm

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("value", ["55501", "555012", "+1234567"])
def test_twilio_from_short_code_is_a_number_that_texts_us_contacts(settings: Any, value: str) -> None:
    settings.TWILIO_FROM = value
    settings.TWILIO_MESSAGING_SERVICE_SID = ""
    config = get_config()
    (sender,) = config.senders
    assert sender.sender.kind == "number"
    assert sender.number_type == "short_code"
    assert sender.rate_per_second == 100.0
    assert config.sender_type == "numbers"
    # US contacts cannot get an alphanumeric sender ID: before, "55501" was one, and they got nothing.
    chosen = choose_sender(senders=config.senders, contact_id=1, to_number="+14155550123", country="US")
    assert chosen.sender.value == value


def test_an_alphanumeric_id_in_twilio_from_is_still_one(settings: Any) -> None:
    settings.TWILIO_FROM = "ACME"
    settings.TWILIO_MESSAGING_SERVICE_SID = ""
    (sender,) = get_config().senders
    assert sender.sender.kind == "alphanumeric"


def test_the_pool_accepts_a_short_code_as_twilio_writes_it() -> None:
    form = SenderNumberForm({"phone_number": "55501", "number_type": "short_code"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["phone_number"] == "55501"
    assert form.cleaned_data["rate_per_second"] == 100
