"""WhatsApp and Messenger through the real pipeline (issue 16): fake_twilio in its own process posts signed inbound
messages to the live server, a real worker sends with the official client, and fake_twilio says what reached it."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from contacts.models import Channel, Contact, DoNotContact, Segment, SegmentMembership, Suppression, TimelineEvent
from providers.twilio.testing import PATH
from smsapp.models import ApiToken
from smsapp.testing import procs
from tests.real_workers import worker_env
from tests.waiting import wait_for
from texts.keywords import keyword_seed_defaults
from texts.models import InboundMessage, OutboundMessage, Status, TextMessage
from texts.services.broadcasts import broadcast_send
from texts.services.outbound import outbound_enqueue

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

OURS, WHATSAPP_SENDER, PAGE_ID = "+15005550006", "+14155238886", "104729837462849"
ANN, BEN, CAT = "+14155552601", "+14155552602", "+14155552603"
JSON = "application/json"


def _env(fake: Any, public_url: str = "") -> dict[str, str]:
    """The worker's environment; status callbacks go to ``public_url`` (nowhere when empty)."""
    return worker_env(
        fake,
        sender=OURS,
        public_url=public_url,
        TWILIO_WHATSAPP_FROM=WHATSAPP_SENDER,
        TWILIO_MESSENGER_FROM=PAGE_ID,
    )


def web_settings(settings: Any, fake: Any, live_server: Any) -> None:
    settings.SMS_PROVIDER = "twilio"
    settings.TWILIO_ACCOUNT_SID = fake.account_sid
    settings.TWILIO_AUTH_TOKEN = fake.auth_token
    settings.TWILIO_API_KEY_SID = ""
    settings.TWILIO_API_KEY_SECRET = ""
    settings.TWILIO_FROM = OURS
    settings.TWILIO_WHATSAPP_FROM = WHATSAPP_SENDER
    settings.TWILIO_MESSENGER_FROM = PAGE_ID
    settings.TWILIO_MESSAGING_SERVICE_SID = ""
    settings.SMS_CALLBACK_SKIP_SIGNATURE = False
    settings.SMS_STATUS_BUFFER = False
    settings.PUBLIC_BASE_URL = live_server.url


def sent_to(fake: Any, address: str) -> list[dict[str, Any]]:
    return [m for m in fake.messages() if m.get("to") == address]


def settled(message_id: int) -> OutboundMessage | None:
    row = OutboundMessage.objects.get(pk=message_id)
    return row if row.status not in {Status.QUEUED, Status.SENDING} else None


def api_client(user: User) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(user=user, name='channels')[1]}")


def test_free_form_whatsapp_is_refused_outside_the_window_and_goes_once_the_contact_writes(
    fake_twilio_process: Any, live_server: Any, settings: Any, admin_user: User
) -> None:
    fake = fake_twilio_process
    web_settings(settings, fake, live_server)
    api = api_client(admin_user)
    ann = Contact.objects.create(first_name="Ann", mobile=ANN, whatsapp=ANN)
    text = TextMessage.objects.create(
        name="Order update", body="Hi {{first_name}}, your order shipped", category="transactional", channel="whatsapp"
    )
    send = f"/api/v1/text-messages/{text.pk}/send"
    refused = api.post(send, json.dumps({"contact_id": ann.pk}), content_type=JSON)
    assert refused.status_code == 409, refused.content
    assert "24-hour window" in refused.content.decode()
    # A campaign's send is queued, and the worker refuses it at claim with the reason on the log.
    assert outbound_enqueue(text_message=text, contacts=[ann.pk], source="campaign", source_ref="e:1:1") == 1
    queued = OutboundMessage.objects.get()
    assert (queued.channel, queued.to_number) == ("whatsapp", ANN)

    worker = procs.start_worker(
        queues="sms_priority,sms_bulk", concurrency=1, env=_env(fake, public_url=live_server.url)
    )
    try:
        failed = wait_for(lambda: settled(queued.pk), "the refused WhatsApp message settling")
        assert (failed.status, failed.error_code) == (Status.FAILED, "outside_window")
        assert "24-hour window" in failed.error_message
        assert fake.messages() == []  # nothing reached Twilio

        wrote = fake.send_inbound(
            f"whatsapp:{ANN}", f"whatsapp:{WHATSAPP_SENDER}", "Where is my order?", url=live_server.url + PATH
        )
        assert wrote["status"] == 200, wrote
        inbound = InboundMessage.objects.get()
        assert (inbound.channel, inbound.from_number, inbound.contact_id) == ("whatsapp", ANN, ann.pk)
        ann.refresh_from_db()
        assert ann.whatsapp_inbound_at is not None

        accepted = api.post(send, json.dumps({"contact_id": ann.pk}), content_type=JSON)
        assert accepted.status_code == 202, accepted.content
        assert accepted.json()["channel"] == "whatsapp"
        reached = wait_for(lambda: sent_to(fake, f"whatsapp:{ANN}"), "the WhatsApp message reaching fake_twilio")
        assert reached[0]["from"] == f"whatsapp:{WHATSAPP_SENDER}"
        assert reached[0]["body"] == "Hi Ann, your order shipped"
        sent = OutboundMessage.objects.get(pk=accepted.json()["id"])
        # fake_twilio reports delivered, then read; read is a delivery for the log.
        statuses = wait_for(
            lambda: (
                [c["params"]["MessageStatus"] for c in fake.status_callbacks_sent() if c["status"] == 200][-1:]
                == ["read"]
                and [c["params"]["MessageStatus"] for c in fake.status_callbacks_sent()]
            ),
            "the read status callback",
        )
        assert statuses == ["queued", "sent", "delivered", "read"]
        sent.refresh_from_db()
        assert sent.status == Status.DELIVERED
    finally:
        worker.stop()
    assert sent_to(fake, ANN) == []  # never as an SMS


def test_whatsapp_stop_opts_out_whatsapp_only_and_sms_still_goes(
    fake_twilio_process: Any, live_server: Any, settings: Any
) -> None:
    fake = fake_twilio_process
    web_settings(settings, fake, live_server)
    fake.control(inbound_url=live_server.url + PATH)
    keyword_seed_defaults()
    ben = Contact.objects.create(first_name="Ben", mobile=BEN, whatsapp=BEN)
    stopped = fake.send_inbound(f"whatsapp:{BEN}", f"whatsapp:{WHATSAPP_SENDER}", "STOP")
    assert stopped["status"] == 200
    assert DoNotContact.objects.filter(contact=ben, channel=Channel.WHATSAPP, lifted_at__isnull=True).exists()
    assert not DoNotContact.objects.filter(contact=ben, channel=Channel.SMS).exists()
    assert list(Suppression.objects.values_list("channel", "address")) == [("whatsapp", BEN)]

    whatsapp = TextMessage.objects.create(name="WA", body="On WhatsApp", category="transactional", channel="whatsapp")
    sms = TextMessage.objects.create(name="SMS", body="By SMS {{first_name}}", category="transactional")
    assert outbound_enqueue(text_message=whatsapp, contacts=[ben.pk], source="api") == 0  # opted out there
    assert outbound_enqueue(text_message=sms, contacts=[ben.pk], source="api") == 1
    row = OutboundMessage.objects.get()
    worker = procs.start_worker(queues="sms_priority,sms_bulk", concurrency=1, env=_env(fake))
    try:
        done = wait_for(lambda: settled(row.pk), "the SMS settling")
    finally:
        worker.stop()
    assert done.status in {Status.SENT, Status.DELIVERED}, done.error_message
    assert [m["body"] for m in sent_to(fake, BEN)] == ["By SMS Ben"]
    assert [m["from"] for m in sent_to(fake, BEN)] == [OURS]
    assert sent_to(fake, f"whatsapp:{BEN}") == []


def test_a_messenger_reply_creates_the_messenger_address_and_lands_on_the_timeline(
    fake_twilio_process: Any, live_server: Any, settings: Any
) -> None:
    fake = fake_twilio_process
    web_settings(settings, fake, live_server)
    psid = "2456789012345678"
    answer = fake.send_inbound(
        f"messenger:{psid}",
        f"messenger:{PAGE_ID}",
        "Do you ship to Canada?",
        url=live_server.url + PATH,
        profile_name="Dee",
    )
    assert answer["status"] == 200, answer
    dee = Contact.objects.get(messenger_id=psid)
    assert (dee.first_name, dee.mobile, dee.whatsapp) == ("Dee", None, None)
    entry = TimelineEvent.objects.get(contact=dee, kind="sms.reply")
    assert entry.title == "Messenger reply: Do you ship to Canada?"
    assert entry.detail["channel"] == "messenger"

    text = TextMessage.objects.create(
        name="Answer", body="Yes we do, {{first_name}}", category="transactional", channel="messenger"
    )
    assert outbound_enqueue(text_message=text, contacts=[dee.pk], source="api") == 1
    row = OutboundMessage.objects.get()
    worker = procs.start_worker(queues="sms_priority,sms_bulk", concurrency=1, env=_env(fake))
    try:
        done = wait_for(lambda: settled(row.pk), "the Messenger message settling")
    finally:
        worker.stop()
    assert done.status in {Status.SENT, Status.DELIVERED}, done.error_message
    (reached,) = sent_to(fake, f"messenger:{psid}")
    assert (reached["from"], reached["body"]) == (f"messenger:{PAGE_ID}", "Yes we do, Dee")


def test_a_whatsapp_broadcast_reports_the_contacts_outside_the_window(
    fake_twilio_process: Any, live_server: Any, settings: Any
) -> None:
    fake = fake_twilio_process
    web_settings(settings, fake, live_server)
    segment = Segment.objects.create(name="Chat users")
    wrote = Contact.objects.create(first_name="Ann", whatsapp=ANN, whatsapp_inbound_at=timezone.now())
    stale = Contact.objects.create(
        first_name="Ben", whatsapp=BEN, whatsapp_inbound_at=timezone.now() - dt.timedelta(hours=25)
    )
    never = Contact.objects.create(first_name="Cat", whatsapp=CAT)
    sms_only = Contact.objects.create(first_name="Dan", mobile="+14155552604")
    for contact in (wrote, stale, never, sms_only):
        SegmentMembership.objects.create(segment=segment, contact=contact)
    text = TextMessage.objects.create(name="Sale", body="Sale today", category="transactional", channel="whatsapp")
    text.segments.add(segment)

    run = broadcast_send(text_message=text)
    assert (run.queued, run.outside_window, run.no_number) == (1, 2, 1)
    assert "2 outside WhatsApp's 24-hour window" in run.summary()
    (row,) = OutboundMessage.objects.all()
    assert (row.contact_id, row.channel, row.to_number) == (wrote.pk, "whatsapp", ANN)
    worker = procs.start_worker(queues="sms_priority,sms_bulk", concurrency=1, env=_env(fake))
    try:
        done = wait_for(lambda: settled(row.pk), "the broadcast settling")
    finally:
        worker.stop()
    assert done.status in {Status.SENT, Status.DELIVERED}, done.error_message
    assert [m["to"] for m in fake.messages()] == [f"whatsapp:{ANN}"]


def test_a_campaign_branches_on_a_quick_reply_button(fake_twilio_process: Any, live_server: Any, settings: Any) -> None:
    from campaigns import services as campaign_services
    from campaigns.models import Campaign, CampaignEventLog, LogStatus

    fake = fake_twilio_process
    web_settings(settings, fake, live_server)
    url = live_server.url + PATH
    segment = Segment.objects.create(name="Chat users")
    buyers = Segment.objects.create(name="Buyers")
    eve = Contact.objects.create(first_name="Eve", whatsapp=ANN, whatsapp_inbound_at=timezone.now())
    SegmentMembership.objects.create(segment=segment, contact=eve)
    offer = TextMessage.objects.create(
        name="Offer", body="Want 20% off, {{first_name}}?", category="transactional", channel="whatsapp"
    )
    campaign = Campaign.objects.create(name="Offer by WhatsApp", is_published=True)
    campaign.segments.add(segment)

    def add(kind: str, parent: Any = None, path: str | None = None, **data: Any) -> Any:
        return campaign_services.campaign_event_save(campaign=campaign, kind=kind, data=data, parent=parent, path=path)

    send = add("send_text_message", text_message=offer)
    decision = add(
        "replied_with_button", parent=send, wait_amount=1, wait_unit="days", properties={"button": "yes_sale"}
    )
    yes = add("add_to_segment", parent=decision, path="yes", properties={"segment_id": buyers.pk})

    worker = procs.start_worker(env=_env(fake, public_url=live_server.url))
    try:
        campaign_services.campaigns_process()
        reached = wait_for(lambda: sent_to(fake, f"whatsapp:{ANN}"), "the offer reaching fake_twilio")
        assert reached[0]["body"] == "Want 20% off, Eve?"
        wait_for(
            lambda: CampaignEventLog.objects.filter(event=decision, status=LogStatus.WAITING).exists(),
            "the button decision waiting",
        )
        # Typing the payload is not a tap on the button: the decision keeps waiting.
        assert fake.send_inbound(f"whatsapp:{ANN}", f"whatsapp:{WHATSAPP_SENDER}", "YES_SALE", url=url)["status"] == 200
        tapped = fake.send_inbound(
            f"whatsapp:{ANN}",
            f"whatsapp:{WHATSAPP_SENDER}",
            "Yes please",
            url=url,
            button_text="Yes please",
            button_payload="YES_SALE",
        )
        assert tapped["status"] == 200
        assert tapped["params"]["ButtonPayload"] == "YES_SALE"
        wait_for(lambda: CampaignEventLog.objects.filter(event=yes, status=LogStatus.DONE).exists(), "the yes path")
    finally:
        worker.stop()
    assert SegmentMembership.objects.filter(segment=buyers, contact=eve).exists()
    tap = InboundMessage.objects.get(button_payload="YES_SALE")
    assert (tap.channel, tap.button_text, tap.contact_id) == ("whatsapp", "Yes please", eve.pk)
    assert CampaignEventLog.objects.get(event=decision).path_taken == "yes"
