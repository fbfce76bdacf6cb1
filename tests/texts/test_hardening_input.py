"""Text message and callback input that used to be taken as it came: malformed tokens, oversized callback fields."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from providers.twilio.testing import configure, inbound_params, post, sid, status_params
from smsapp.models import ApiToken
from texts.models import InboundMessage, OutboundMessage, Status, TextMessage
from texts.personalise import MalformedToken, parse_tokens

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("Hi {{first_name|{{last_name}}}}!", "{{first_name|{{last_name}}}}!"),
        ("Hi {{first_name", "{{first_name"),
        ("Hi first_name}} there", "first_name}}"),
        ("Hi {contactfield=firstname there", "{contactfield=firstname"),
    ],
)
def test_malformed_tokens_are_refused_naming_them(body: str, fragment: str) -> None:
    with pytest.raises(MalformedToken) as caught:
        parse_tokens(body)
    assert caught.value.fragment == fragment
    assert "not a complete personalisation token" in str(caught.value)


def test_well_formed_tokens_and_plain_braces_still_pass() -> None:
    tokens = parse_tokens("Hi {{first_name|there}}, {contactfield=lastname} {a single brace} {{ custom.plan }}")
    assert [t.field for t in tokens] == ["first_name", "last_name", "custom.plan"]


def test_the_api_refuses_a_malformed_token_when_saved(marketer_user: User) -> None:
    client = Client(HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(user=marketer_user, name='t')[1]}")
    response = client.post(
        "/api/v1/text-messages",
        {"name": "Promo", "body": "Hi {{first_name|{{last_name}}}}"},
        content_type="application/json",
    )
    assert response.status_code == 400
    (message,) = response.json()["errors"]["body"]
    assert "“{{first_name|{{last_name}}}}” is not a complete personalisation token" in message
    assert not TextMessage.objects.exists()


def test_the_editor_refuses_a_malformed_token(marketer_client: Client) -> None:
    response = marketer_client.post(
        "/text-messages/new/", {"name": "Promo", "body": "Hi {{first_name|{{last_name}}}}", "language": "en"}
    )
    assert response.status_code == 200
    assert "is not a complete personalisation token" in response.content.decode()
    assert not TextMessage.objects.exists()


@pytest.fixture
def twilio(settings: Any) -> Client:
    configure(settings)
    return Client()


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("MessageSid", "SM" + "a" * 63),
        ("AccountSid", "AC" + "b" * 63),
        ("To", "+1" + "5" * 40),
        ("FromCountry", "USA"),
        ("OptOutType", "STOP" * 5),
    ],
)
def test_a_signed_inbound_field_over_its_column_is_a_400_naming_it(twilio: Client, field: str, value: str) -> None:
    # Found on PostgreSQL: a MessageSid over 64 characters was a 500 (varchar(64)); others were cut down silently.
    params = inbound_params("Hello")
    params[field] = value
    if field == "MessageSid":
        params["SmsSid"] = params["SmsMessageSid"] = value
    if field == "AccountSid":
        twilio_settings_account(params, value)
    response = post(twilio, params)
    assert response.status_code == 400, response.content
    assert f"{field} is {len(value)} characters; at most" in response.content.decode()
    assert not InboundMessage.objects.exists()


def twilio_settings_account(params: dict[str, str], value: str) -> None:
    from django.conf import settings

    settings.TWILIO_ACCOUNT_SID = value  # the account check passes; only the size is wrong


@pytest.mark.postgres
def test_a_signed_status_callback_with_an_oversized_sid_is_a_400(twilio: Client) -> None:
    message = OutboundMessage.objects.create(
        to_number="+14155550123", source="api", status=Status.SENDING, provider_called_at="2026-01-01T00:00:00Z"
    )
    long_sid = "SM" + "c" * 70
    response = twilio.post(
        f"/sms/twilio/callback?m={message.pk}",
        data=status_params(long_sid, "delivered"),
        HTTP_X_TWILIO_SIGNATURE=_sign_with_query(status_params(long_sid, "delivered"), message.pk),
    )
    assert response.status_code == 400
    assert "MessageSid is 72 characters; at most 64 are accepted." in response.content.decode()
    message.refresh_from_db()
    assert message.provider_sid is None
    # A normal one still works.
    assert post(twilio, status_params(sid(), "delivered")).status_code == 200


def _sign_with_query(params: dict[str, str], pk: int) -> str:
    from django.conf import settings

    from providers.twilio.testing import PATH, sign

    return sign(params, url=f"{settings.PUBLIC_BASE_URL}{PATH}?m={pk}")
