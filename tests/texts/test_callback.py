"""POST /sms/twilio/callback: signatures, inbound replies and keywords, status callbacks."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from contacts.models import Contact, DoNotContact, TimelineEvent
from contacts.services import contact_is_dnc, dnc_add
from contacts.suppression import address_opt_out_protected
from providers.twilio.testing import PATH, configure, inbound_params, post, sid, sign, status_params
from texts.models import InboundMessage, Keyword, OutboundMessage, Status, TextMessage
from texts.signals import inbound_received, message_status_changed

pytestmark = pytest.mark.django_db

NUMBER = "+14155550123"


@pytest.fixture(autouse=True)
def _twilio(settings: Any) -> None:
    configure(settings)


@pytest.fixture
def twilio() -> Client:
    return Client()  # anonymous, like Twilio


def _message(body: str) -> str:
    return f"<Response><Message>{body}</Message></Response>"


def _sent(contact: Contact | None = None, *, number: str = NUMBER, text: TextMessage | None = None) -> OutboundMessage:
    return OutboundMessage.objects.create(
        contact=contact,
        to_number=number,
        text_message=text,
        source="api",
        status=Status.SENT,
        provider_sid=sid(),
        sent_at=timezone.now(),
    )


# Signatures and malformed requests


def test_get_is_405(twilio: Client) -> None:
    assert twilio.get(PATH).status_code == 405


def test_missing_signature_is_403_and_changes_nothing(twilio: Client) -> None:
    response = post(twilio, inbound_params("STOP"), signature="")
    assert response.status_code == 403
    assert not InboundMessage.objects.exists()
    assert not Contact.objects.exists()


def test_forged_signature_is_403_and_changes_nothing(twilio: Client) -> None:
    params = inbound_params("STOP")
    forged = sign(params, token="0" * 32)
    assert post(twilio, params, signature=forged).status_code == 403
    # Signed correctly, then tampered with: the body no longer matches the signature.
    good = sign(params)
    params["Body"] = "START"
    assert post(twilio, params, signature=good).status_code == 403
    assert not InboundMessage.objects.exists()
    assert not DoNotContact.objects.exists()


def test_signature_is_checked_against_the_public_url(twilio: Client, settings: Any) -> None:
    settings.PUBLIC_BASE_URL = "https://sms.example.com"
    params = inbound_params("hello")
    assert post(twilio, params, signature=sign(params, url="http://testserver" + PATH)).status_code == 403
    assert post(twilio, params, signature=sign(params, url="https://sms.example.com" + PATH)).status_code == 200


def test_skip_signature_setting_accepts_unsigned(twilio: Client, settings: Any) -> None:
    settings.SMS_CALLBACK_SKIP_SIGNATURE = True
    assert post(twilio, inbound_params("hello"), signature="").status_code == 200


@pytest.mark.parametrize("missing", ["MessageSid", "From", "AccountSid"])
def test_inbound_without_required_field_is_400(twilio: Client, missing: str, caplog: pytest.LogCaptureFixture) -> None:
    params = inbound_params("hello")
    del params[missing]
    if missing == "MessageSid":
        del params["SmsSid"], params["SmsMessageSid"]
    response = post(twilio, params)
    assert response.status_code == 400
    assert missing in response.content.decode()
    assert missing in caplog.text
    assert not InboundMessage.objects.exists()


def test_unknown_account_sid_is_400(twilio: Client) -> None:
    response = post(twilio, inbound_params("hello", account_sid="AC" + "9" * 32))
    assert response.status_code == 400
    assert not InboundMessage.objects.exists()


def test_body_over_the_limit_is_413(twilio: Client, settings: Any) -> None:
    settings.MACHINE_MAX_BODY_BYTES = 2048
    params = inbound_params("x" * 3000)
    assert post(twilio, params).status_code == 413
    assert not InboundMessage.objects.exists()


# Inbound replies


def test_unknown_number_creates_contact_and_stores_everything(
    twilio: Client, django_capture_on_commit_callbacks: Any
) -> None:
    received: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        received.append(kwargs)

    inbound_received.connect(receiver)
    try:
        params = inbound_params("Hi there", from_="(415) 555-0177", from_country="US")
        with django_capture_on_commit_callbacks(execute=True):
            response = post(twilio, params)
    finally:
        inbound_received.disconnect(receiver)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/xml")
    assert response.content.decode().endswith("<Response />")
    contact = Contact.objects.get()
    assert contact.mobile == "+14155550177"
    inbound = InboundMessage.objects.get()
    assert (inbound.contact, inbound.body, inbound.from_number) == (contact, "Hi there", "+14155550177")
    assert inbound.raw["FromCity"] == "SAN FRANCISCO"
    assert inbound.from_country == "US"
    assert inbound.keyword is None
    assert inbound.action == ""
    entry = TimelineEvent.objects.get(contact=contact, kind="sms.reply")
    assert entry.detail["body"] == "Hi there"
    assert received
    assert received[0]["inbound"] == inbound
    assert received[0]["contact_id"] == contact.pk
    assert received[0]["body"] == "Hi there"
    assert received[0]["in_reply_to_id"] is None


def test_reply_links_to_last_message_sent_to_that_number(twilio: Client) -> None:
    contact = Contact.objects.create(mobile=NUMBER)
    text = TextMessage.objects.create(name="Sale", body="Hi")
    _sent(contact, text=text)
    latest = _sent(contact, text=text)
    _sent(Contact.objects.create(mobile="+14155550999"), number="+14155550999")
    post(twilio, inbound_params("Which shop?"))
    inbound = InboundMessage.objects.get()
    assert inbound.contact == contact
    assert inbound.in_reply_to == latest


def test_mms_stores_media_and_shows_links_on_timeline(twilio: Client) -> None:
    media = [
        ("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1", "image/jpeg"),
        ("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME2", "video/mp4"),
    ]
    assert post(twilio, inbound_params("", media=media)).status_code == 200
    inbound = InboundMessage.objects.get()
    assert inbound.media_urls == [m[0] for m in media]
    assert inbound.media_content_types == ["image/jpeg", "video/mp4"]
    entry = TimelineEvent.objects.get(kind="sms.reply")
    assert entry.detail["media"] == [{"url": u, "content_type": t} for u, t in media]


def test_retried_webhook_is_stored_once_and_answered_the_same(twilio: Client) -> None:
    params = inbound_params("HELP")
    first = post(twilio, params)
    second = post(twilio, params)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert InboundMessage.objects.count() == 1
    assert TimelineEvent.objects.filter(kind="sms.reply").count() == 1


@pytest.mark.parametrize("body", ["STOP", "Stop", " stop. ", "STOP!", "unsubscribe", "Quit", "optout", "REVOKE"])
def test_opt_out_keywords_mark_dnc(twilio: Client, body: str) -> None:
    assert post(twilio, inbound_params(body)).status_code == 200
    contact = Contact.objects.get(mobile=NUMBER)
    entry = DoNotContact.objects.get(contact=contact, lifted_at__isnull=True)
    assert (entry.reason, entry.source, entry.comment) == ("unsubscribed", "keyword", body)
    assert InboundMessage.objects.get().action == "opt_out"


@pytest.mark.parametrize("body", ["please don't stop", "stop it now", "STOPP", "", "S T O P"])
def test_sentences_are_not_keywords(twilio: Client, body: str) -> None:
    post(twilio, inbound_params(body))
    assert not DoNotContact.objects.exists()
    assert InboundMessage.objects.get().action == ""


def test_opt_in_after_opt_out(twilio: Client) -> None:
    post(twilio, inbound_params("STOP"))
    contact = Contact.objects.get(mobile=NUMBER)
    assert contact_is_dnc(contact=contact)
    post(twilio, inbound_params("start"))
    assert not contact_is_dnc(contact=contact)
    entry = DoNotContact.objects.get(contact=contact)
    assert entry.lifted_by == "keyword"
    post(twilio, inbound_params("Stop."))
    assert contact_is_dnc(contact=contact)


def test_start_does_not_lift_a_manual_dnc(twilio: Client) -> None:
    contact = Contact.objects.create(mobile=NUMBER)
    dnc_add(contact=contact, reason="manual", source="marketer", comment="asked by phone")
    post(twilio, inbound_params("UNSTOP"))
    assert contact_is_dnc(contact=contact)
    assert InboundMessage.objects.get().action == "opt_in"


def test_start_does_not_lift_a_carrier_opt_out(twilio: Client) -> None:
    contact = Contact.objects.create(mobile=NUMBER)
    dnc_add(contact=contact, reason="unsubscribed", source="provider")
    post(twilio, inbound_params("YES"))
    assert contact_is_dnc(contact=contact)


def test_help_answers_with_plugin_help_text(twilio: Client) -> None:
    from providers.twilio.models import TwilioSettings

    row = TwilioSettings.load()
    row.help_text = "Acme: reply STOP to stop & START to resume <3"
    row.save()
    response = post(twilio, inbound_params("help?"))
    assert response.content.decode().endswith(_message("Acme: reply STOP to stop &amp; START to resume &lt;3"))
    assert not DoNotContact.objects.exists()
    assert InboundMessage.objects.get().reply.startswith("Acme")


def test_info_is_a_help_word(twilio: Client) -> None:
    response = post(twilio, inbound_params("info"))
    assert "<Message>" in response.content.decode()


def test_keyword_auto_reply_wins(twilio: Client) -> None:
    Keyword.objects.filter(word="STOP").update(auto_reply="You're out. Reply START to come back.")
    response = post(twilio, inbound_params("stop"))
    assert response.content.decode().endswith(_message("You're out. Reply START to come back."))


def test_custom_keyword_replies_without_dnc(twilio: Client) -> None:
    Keyword.objects.create(word="HOURS", kind="custom", auto_reply="Open 9-5, Mon-Fri.")
    response = post(twilio, inbound_params("hours!"))
    assert response.content.decode().endswith(_message("Open 9-5, Mon-Fri."))
    assert not DoNotContact.objects.exists()


def test_inactive_keyword_does_nothing(twilio: Client) -> None:
    Keyword.objects.create(word="ARRET", kind="opt_out", active=False)  # built-in words are never inactive
    post(twilio, inbound_params("arret"))
    assert not DoNotContact.objects.exists()


def test_twilio_opt_out_type_is_honoured(twilio: Client) -> None:
    # A word Twilio's Advanced Opt-Out knows but our list does not: OptOutType decides.
    response = post(twilio, inbound_params("ARRET", OptOutType="STOP"))
    assert contact_is_dnc(contact=Contact.objects.get(mobile=NUMBER))
    assert InboundMessage.objects.get().opt_out_type == "STOP"
    # Twilio answered it already: no second confirmation from us.
    assert response.content.decode().endswith("<Response />")
    post(twilio, inbound_params("Hola", OptOutType="START"))
    assert not contact_is_dnc(contact=Contact.objects.get(mobile=NUMBER))


def test_no_reply_for_alphanumeric_sender(twilio: Client, settings: Any) -> None:
    settings.TWILIO_FROM = "ACME"
    response = post(twilio, inbound_params("HELP"))
    assert response.content.decode().endswith("<Response />")


def test_no_reply_when_direction_is_outbound_only_but_stop_still_counts(twilio: Client) -> None:
    from providers.twilio.models import TwilioSettings

    row = TwilioSettings.load()
    row.direction = "outbound"
    row.save()
    assert post(twilio, inbound_params("HELP")).content.decode().endswith("<Response />")
    post(twilio, inbound_params("STOP"))
    assert contact_is_dnc(contact=Contact.objects.get(mobile=NUMBER))


def test_sender_that_is_not_a_mobile_is_stored_without_contact(twilio: Client) -> None:
    assert post(twilio, inbound_params("Your code is 1234", from_="72345", from_country="")).status_code == 200
    inbound = InboundMessage.objects.get()
    assert inbound.contact is None
    assert inbound.from_number == "72345"
    assert not Contact.objects.exists()


# Status callbacks


def test_status_callbacks_move_forward_only(twilio: Client, django_capture_on_commit_callbacks: Any) -> None:
    contact = Contact.objects.create(mobile=NUMBER)
    message = _sent(contact)
    changes: list[str] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        changes.append(kwargs["status"])

    message_status_changed.connect(receiver)
    try:
        for status in ("queued", "delivered", "sent", "sending", "undelivered", "delivered"):
            with django_capture_on_commit_callbacks(execute=True):
                assert post(twilio, status_params(message.provider_sid or "", status)).status_code == 200
    finally:
        message_status_changed.disconnect(receiver)
    message.refresh_from_db()
    assert message.status == Status.DELIVERED
    assert message.delivered_at is not None
    assert changes == ["delivered"]
    assert TimelineEvent.objects.filter(contact=contact, kind="sms.delivered").count() == 1


@pytest.mark.parametrize(
    ("twilio_status", "expected"),
    [
        ("accepted", Status.SENT),
        ("scheduled", Status.SENT),
        ("queued", Status.SENT),
        ("sending", Status.SENT),
        ("sent", Status.SENT),
        ("delivered", Status.DELIVERED),
        ("read", Status.DELIVERED),
        ("partially_delivered", Status.DELIVERED),
        ("undelivered", Status.UNDELIVERED),
        ("failed", Status.FAILED),
        ("canceled", Status.FAILED),
    ],
)
def test_every_twilio_status_is_understood(twilio: Client, twilio_status: str, expected: str) -> None:
    # From `unknown` (the worker died after calling Twilio) every status teaches us something.
    message = _sent(Contact.objects.create(mobile=NUMBER))
    OutboundMessage.objects.filter(pk=message.pk).update(status=Status.UNKNOWN)
    post(twilio, status_params(message.provider_sid or "", twilio_status))
    message.refresh_from_db()
    assert message.status == expected


def test_failure_records_error_code_and_timeline(twilio: Client) -> None:
    contact = Contact.objects.create(mobile=NUMBER)
    message = _sent(contact)
    post(twilio, status_params(message.provider_sid or "", "undelivered", error_code="30003"))
    message.refresh_from_db()
    assert (message.status, message.error_code) == (Status.UNDELIVERED, "30003")
    entry = TimelineEvent.objects.get(contact=contact, kind="sms.failed")
    assert entry.detail == {"outbound_id": message.pk, "status": "undelivered", "error_code": "30003"}
    assert entry.title == "Text message undelivered: Text message"
    assert not contact_is_dnc(contact=contact)


def test_delivery_on_the_timeline_names_the_text_message(twilio: Client) -> None:
    contact = Contact.objects.create(mobile=NUMBER)
    text = TextMessage.objects.create(name="Spring sale", body="Hi")
    message = _sent(contact, text=text)
    post(twilio, status_params(message.provider_sid or "", "delivered"))
    post(twilio, status_params(message.provider_sid or "", "delivered"))  # a retry writes nothing more
    entry = TimelineEvent.objects.get(contact=contact, kind="sms.delivered")
    assert entry.title == "Text message delivered: Spring sale"
    assert entry.detail == {"outbound_id": message.pk, "status": "delivered", "error_code": ""}


def test_21610_marks_the_recipient_dnc(twilio: Client) -> None:
    contact = Contact.objects.create(mobile=NUMBER)
    message = _sent(contact)
    post(twilio, status_params(message.provider_sid or "", "failed", error_code="21610"))
    entry = DoNotContact.objects.get(contact=contact)
    assert (entry.reason, entry.source) == ("unsubscribed", "provider")
    # Nobody but the person lifts it: a START that Twilio did not handle leaves it (Twilio still blocks the number)...
    post(twilio, inbound_params("START"))
    assert contact_is_dnc(contact=contact)
    # ... the one Twilio's Advanced Opt-Out handled (it lifted its own block, OptOutType=START) lifts it.
    post(twilio, inbound_params("START", OptOutType="START"))
    assert not contact_is_dnc(contact=contact)
    assert not address_opt_out_protected(address=NUMBER)


def test_start_does_not_lift_a_bounce(twilio: Client) -> None:
    bounced = Contact.objects.create(mobile=NUMBER)
    dnc_add(contact=bounced, reason=DoNotContact.Reason.BOUNCED, source=DoNotContact.Source.PROVIDER)
    assert contact_is_dnc(contact=bounced)
    post(twilio, inbound_params("START", OptOutType="START"))
    assert contact_is_dnc(contact=bounced)


def test_unknown_sid_is_200_and_logged(twilio: Client, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="texts.inbound")
    response = post(twilio, status_params("SM" + "0" * 32, "delivered"))
    assert response.status_code == 200
    assert "unknown message SID" in caplog.text


def test_report_counts_replies_and_opt_outs_through_the_callback(twilio: Client, marketer_client: Client) -> None:
    text = TextMessage.objects.create(name="Sale", body="Hi")
    a = Contact.objects.create(mobile=NUMBER)
    b = Contact.objects.create(mobile="+14155550124")
    _sent(a, text=text)
    _sent(b, number=str(b.mobile), text=text)
    post(twilio, inbound_params("Nice"))
    post(twilio, inbound_params("STOP", from_=str(b.mobile)))
    report = marketer_client.get(f"/text-messages/{text.pk}/report/").context["report"]
    assert (report.replies, report.opt_outs) == (2, 1)


def test_seeding_defaults_again_adds_nothing_and_keeps_edits() -> None:
    from texts.keywords import keyword_seed_defaults

    Keyword.objects.filter(word="STOP").update(auto_reply="Bye")
    # A database from before the built-in flag: INFO missing, END switched off.
    Keyword.objects.filter(word__in=["INFO", "END"]).update(builtin=False)
    Keyword.objects.filter(word="INFO").delete()
    Keyword.objects.filter(word="END").update(active=False)
    assert keyword_seed_defaults() == 1
    assert Keyword.objects.get(word="STOP").auto_reply == "Bye"
    assert Keyword.objects.get(word="INFO").builtin
    assert Keyword.objects.get(word="END").active
    assert Keyword.objects.count() == 14  # the 13 built-in words and JOIN
