"""Fuzz the Twilio callback: random form bodies, unsigned and correctly signed, never a 500 (issue 10).

Bodies mix Twilio's own field names with random ones; values are any unicode (NUL and control characters included,
lone surrogates excluded since no client can encode them), sometimes huge, fields sometimes missing. Unsigned posts
must be refused (403) and change nothing; signed ones may be refused as malformed (400) but never crash.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from contacts.models import Contact
from providers.twilio.testing import ACCOUNT_SID, AUTH_TOKEN, OUR_NUMBER, PATH, configure
from texts.models import OutboundMessage

pytestmark = pytest.mark.django_db

TWILIO_FIELDS = [
    "MessageSid",
    "SmsSid",
    "SmsMessageSid",
    "AccountSid",
    "MessagingServiceSid",
    "From",
    "To",
    "Body",
    "NumMedia",
    "NumSegments",
    "MessageStatus",
    "SmsStatus",
    "ErrorCode",
    "ErrorMessage",
    "MediaUrl0",
    "MediaContentType0",
    "FromCountry",
    "ApiVersion",
]
STATUS_WORDS = ["queued", "sending", "sent", "delivered", "undelivered", "failed", "read", "received", "accepted", ""]

text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40)
huge = st.integers(min_value=1_000, max_value=200_000).map(lambda n: "x" * n)
value = st.one_of(
    text,
    huge,
    st.sampled_from([*STATUS_WORDS, "STOP", "START", "HELP", " stop! ", "+14155550123", OUR_NUMBER, ACCOUNT_SID]),
    st.integers().map(str),
)
key = st.one_of(st.sampled_from(TWILIO_FIELDS), text)
bodies = st.dictionaries(key, value, max_size=12)


@pytest.fixture(autouse=True)
def _twilio(settings: Any) -> None:
    configure(settings)


def _post(client: Client, params: dict[str, str], signature: str | None) -> Any:
    headers = {"X-Twilio-Signature": signature} if signature is not None else {}
    return client.post(PATH, urlencode(params), content_type="application/x-www-form-urlencoded", headers=headers)


@settings(
    max_examples=120,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(params=bodies, signed=st.booleans())
def test_random_callback_bodies_never_get_a_500(params: dict[str, str], signed: bool, settings: Any) -> None:
    client = Client()
    url = settings.PUBLIC_BASE_URL + PATH
    contacts_before = Contact.objects.count()
    statuses_before = list(OutboundMessage.objects.values_list("status", flat=True))
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params) if signed else None
    response = _post(client, params, signature)
    assert response.status_code < 500, (response.status_code, response.content[:500])
    if not signed:
        assert response.status_code == 403
        assert Contact.objects.count() == contacts_before
        assert list(OutboundMessage.objects.values_list("status", flat=True)) == statuses_before
    else:
        assert response.status_code in {200, 400, 413}, response.status_code


@settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=text, sender=st.one_of(text, st.just("+14155550123")), extra=st.dictionaries(text, text, max_size=4))
def test_random_inbound_replies_signed_like_twilio_are_stored_or_refused(
    body: str, sender: str, extra: dict[str, str]
) -> None:
    """A complete inbound webhook whose values are random: 200 (stored) or 400 (refused), never a crash."""
    from providers.twilio.testing import inbound_params, sign

    params = {**extra, **inbound_params(body, from_=sender)}
    response = _post(Client(), params, sign(params))
    assert response.status_code in {200, 400}, (response.status_code, response.content[:500])
