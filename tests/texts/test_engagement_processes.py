"""Engagement on real parts (issue 18's "how to know it worked"): one stack of PostgreSQL, Redis, fake_twilio,
gunicorn, a Celery worker and beat; the test talks to gunicorn over HTTP as a phone, a marketer and an admin would,
and runs a webhook receiver of its own on 127.0.0.1.

- A campaign texts a tracked link; a click through gunicorn is recorded once (a preview not at all), shows in the
  report, and moves the contact down the "clicks a link" yes path.
- A reply from the inbox goes through the worker to fake_twilio and shows in the thread.
- The webhook receiver gets signed events, one of them again after answering 500.
- The price Twilio tells only on a later fetch reaches the report through reconcile_statuses.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from smsapp.testing.stack import Stack

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

PASSWORD = "correct-horse-battery-staple"
CLICKER, TALKER = "+14155550101", "+14155550102"
SHOP = "https://shop.example.com/spring/shoes?utm_source=sms"
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1"


class Receiver:
    def __init__(self, answers: list[int]) -> None:
        self.got: list[dict[str, Any]] = []
        self.answers = answers
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.got.append({"headers": dict(self.headers), "body": body})
                self.send_response(outer.answers.pop(0) if outer.answers else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/smsapp"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def stack(django_db_blocker: Any) -> Iterator[Stack]:
    env = {"SMS_LINK_PREVIEW_SECONDS": "0", "WEBHOOKS_RETRY_BASE_SECONDS": "1"}
    with django_db_blocker.unblock(), Stack(workers=1, concurrency=2, extra_env=env, name="engage") as running:
        running.create_user("ada", PASSWORD, is_staff=True)
        yield running


def session(stack: Stack, username: str) -> requests.Session:
    web = requests.Session()
    web.get(f"{stack.public_url}/login/", timeout=10)
    web.post(
        f"{stack.public_url}/login/",
        data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": web.cookies["csrftoken"]},
        timeout=10,
    ).raise_for_status()
    return web


def post(web: requests.Session, url: str, data: dict[str, Any]) -> requests.Response:
    response = web.post(url, data={**data, "csrfmiddlewaretoken": web.cookies["csrftoken"]}, timeout=10)
    response.raise_for_status()
    return response


def signed_by(got: dict[str, Any], secret: str) -> bool:
    parts = dict(item.split("=", 1) for item in got["headers"]["X-Smsapp-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + got["body"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


def test_clicks_replies_webhooks_and_cost_on_real_parts(stack: Stack, django_db_blocker: Any) -> None:
    from django.utils.timezone import now

    from campaigns.models import Campaign, CampaignEvent, CampaignEventLog
    from contacts.models import Consent, Contact, Segment, SegmentMembership
    from texts.models import Conversation, OutboundMessage, ShortLink, TextMessage

    alias = stack.db_alias()
    admin = session(stack, "ada")
    receiver = Receiver(answers=[500])
    page = post(admin, f"{stack.public_url}/settings/webhooks/", {
        "url": receiver.url, "events": ["message.sent", "reply.received", "link.clicked"], "active": "on",
    }).text  # fmt: skip
    secret = re.search(r'value="(whsec_[^"]+)"', page)
    assert secret is not None, page[-2000:]

    with django_db_blocker.unblock():
        db = alias
        audience = Segment.objects.using(db).create(name="Spring")
        clicked = Segment.objects.using(db).create(name="Clicked")
        people = [
            Contact.objects.using(db).create(first_name=name, mobile=number, country="US", timezone="America/New_York")
            for name, number in (("Ada", CLICKER), ("Tom", TALKER))
        ]
        for person in people:
            SegmentMembership.objects.using(db).create(segment=audience, contact=person)
            # The shoes text is marketing: their numbers consent, as the API would record it.
            Consent.objects.using(db).create(address=person.mobile, status="subscribed", at=now(), source="api")
        text = TextMessage.objects.using(db).create(
            name="Spring shoes", body=f"Hi {{{{first_name}}}}, new shoes: {SHOP}"
        )
        campaign = Campaign.objects.using(db).create(name="Spring", is_published=True)
        campaign.segments.add(audience)
        send = CampaignEvent.objects.using(db).create(
            campaign=campaign, event_type="action", kind="send_text_message", text_message=text
        )
        decision = CampaignEvent.objects.using(db).create(
            campaign=campaign, parent=send, event_type="decision", kind="clicked_link", wait_amount=1, wait_unit="days"
        )
        yes = CampaignEvent.objects.using(db).create(
            campaign=campaign, parent=decision, path="yes", event_type="action", kind="add_to_segment",
            properties={"segment_id": clicked.pk},
        )  # fmt: skip

    assert stack.manage("process_campaigns").returncode == 0
    sent = stack.wait_until(
        lambda: len(stack.twilio.messages()) == 2 and stack.twilio.messages(), timeout=90, what="both texts sent"
    )
    body = {m["to"]: m["body"] for m in sent}[CLICKER]
    link = re.search(r"(http://127\.0\.0\.1:\d+/l/[A-Za-z0-9]{12})", body)
    assert link is not None, body
    assert SHOP not in body
    assert body == f"Hi Ada, new shoes: {link.group(1)}\nReply STOP to opt out"  # her first marketing text

    # A link preview first (not counted), then the person, twice (counted once as a unique click).
    preview = requests.get(
        link.group(1), headers={"User-Agent": "facebookexternalhit/1.1"}, allow_redirects=False, timeout=10
    )
    assert (preview.status_code, preview.headers["Location"]) == (302, SHOP)
    with django_db_blocker.unblock():
        started = CampaignEventLog.objects.using(db).filter(event=decision, detail="Waiting for a reply")
        stack.wait_until(lambda: started.count() == 2, timeout=60, what="the waits to start once the texts left")
    for _ in range(2):
        click = requests.get(link.group(1), headers={"User-Agent": PHONE}, allow_redirects=False, timeout=10)
        assert (click.status_code, click.headers["Location"]) == (302, SHOP)
    with django_db_blocker.unblock():
        short = ShortLink.objects.using(db).get(contact__mobile=CLICKER)
        assert (short.clicks, short.previews) == (2, 1)
        stack.wait_until(
            lambda: SegmentMembership.objects.using(db).filter(segment=clicked).exists(),
            timeout=60, what="the clicker to go down the yes path",
        )  # fmt: skip
        assert list(
            SegmentMembership.objects.using(db).filter(segment=clicked).values_list("contact__mobile", flat=True)
        ) == [CLICKER]
        paths = CampaignEventLog.objects.using(db).filter(event=decision).values_list("contact__mobile", "path_taken")
        assert dict(paths) == {CLICKER: "yes", TALKER: None}
        assert CampaignEventLog.objects.using(db).get(event=yes).status == "done"
    report = admin.get(f"{stack.public_url}/text-messages/{text.pk}/report/", timeout=10).text
    assert re.search(r'data-testid="unique-clicks">1<', report), report[:3000]

    # The inbox: Tom writes, the marketer answers from his thread, the worker sends it, the thread shows it.
    stack.twilio.send_inbound(TALKER, "+15005550006", "Do you have size 44?")
    with django_db_blocker.unblock():
        stack.wait_until(lambda: Conversation.objects.using(db).filter(contact__mobile=TALKER, unread=1).exists(),
                         timeout=30, what="Tom's conversation")  # fmt: skip
        tom = Contact.objects.using(db).get(mobile=TALKER)
    inbox = admin.get(f"{stack.public_url}/conversations/", timeout=10).text
    assert 'aria-label="1 unread"' in inbox
    post(admin, f"{stack.public_url}/conversations/{tom.pk}/reply/", {"body": "We do, {{first_name}}!"})
    answer = stack.wait_until(
        lambda: [m for m in stack.twilio.messages() if m["to"] == TALKER and m["body"] == "We do, Tom!"],
        timeout=60, what="the reply to reach fake_twilio",
    )  # fmt: skip
    assert answer[0]["from"] == "+15005550006"
    thread = admin.get(f"{stack.public_url}/conversations/{tom.pk}/", timeout=10).text
    assert "Do you have size 44?" in thread
    assert "We do, Tom!" in thread

    # Webhooks: the texts sent, Tom's reply and Ada's first click, all signed; the first answered 500 and came again.
    events = stack.wait_until(
        lambda: (types := [json.loads(g["body"])["type"] for g in receiver.got])
        and {"message.sent", "reply.received", "link.clicked"} <= set(types) and types.count("message.sent") >= 4
        and receiver.got,
        timeout=90, what="the webhook deliveries",
    )  # fmt: skip
    assert all(signed_by(g, secret.group(1)) for g in events)
    ids = [json.loads(g["body"])["id"] for g in events]
    assert len(ids) - len(set(ids)) == 1  # the delivery answered 500 was delivered again, with the same event id
    clicks = [json.loads(g["body"])["data"] for g in events if json.loads(g["body"])["type"] == "link.clicked"]
    assert [c["url"] for c in clicks] == [SHOP]  # the first click only

    # Cost: fake_twilio, like Twilio, answered the create with no price; reconciliation fetches it later.
    with django_db_blocker.unblock():
        assert not OutboundMessage.objects.using(db).filter(price__isnull=False).exists()
    stack.twilio.control(price_delay_ms=0)
    result = stack.manage("reconcile_statuses", "--after", "0")
    assert result.returncode == 0, result.stderr
    with django_db_blocker.unblock():
        priced = OutboundMessage.objects.using(db).filter(text_message=text, price__isnull=False)
        assert sorted(priced.values_list("price", "price_unit")) == [(Decimal("-0.00830"), "USD")] * 2
    report = admin.get(f"{stack.public_url}/text-messages/{text.pk}/report/", timeout=10).text
    assert re.search(r'data-testid="cost">0\.0166 USD<', report), report[:3000]
    assert not stack.leaked_secrets({"webhook secret": secret.group(1)})
