"""Outgoing webhooks against a real HTTP receiver on 127.0.0.1: events from the product's signals, signed JSON POSTs,
backoff after a failure, giving up after a day, the delivery log and "Send test event". The same through a real
Celery worker is in tests/texts/test_engagement_processes.py."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from unittest import mock

import pytest
from django.test import Client
from django.utils import timezone

from contacts.models import Contact
from contacts.services import dnc_add, dnc_remove
from hooks import services
from hooks.models import Delivery, Endpoint
from texts.models import OutboundMessage, Status
from texts.signals import message_status_changed

pytestmark = pytest.mark.django_db
SECRET = "whsec_test-secret"


class Receiver:
    """A webhook receiver: answers with the next of ``answers`` (200 when none left), keeps what it got."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.answers: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received.append({"headers": dict(self.headers), "body": body})
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


def verify(headers: dict[str, str], body: bytes, secret: str, *, tolerance: int = 300) -> bool:
    """The README's verification snippet, as a receiver would run it."""
    parts = dict(item.split("=", 1) for item in headers["X-Smsapp-Signature"].split(","))
    signed = f"{parts['t']}.".encode() + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(time.time() - int(parts["t"])) <= tolerance


def endpoint(url: str, events: list[str]) -> Endpoint:
    return services.endpoint_save(endpoint=Endpoint(url=url, events=events), secret=SECRET)


def deliver_all() -> dict[str, int]:
    return services.deliveries_send(delivery_ids=list(Delivery.objects.values_list("pk", flat=True)))


def test_status_events_become_signed_json_posts(receiver: Receiver, django_capture_on_commit_callbacks: Any) -> None:
    endpoint(receiver.url, ["message.delivered"])
    contact = Contact.objects.create(first_name="Ada", mobile="+14155550101")
    row = OutboundMessage.objects.create(contact=contact, to_number="+14155550101", source="api", status="delivered")
    with mock.patch("hooks.tasks.deliver_task.apply_async"), django_capture_on_commit_callbacks(execute=True):
        message_status_changed.send(sender=OutboundMessage, message_ids=[row.pk], status=Status.DELIVERED)
        message_status_changed.send(sender=OutboundMessage, message_ids=[row.pk], status=Status.SENT)  # not subscribed
    assert deliver_all()["delivered"] == 1
    (got,) = receiver.received
    assert verify(got["headers"], got["body"], SECRET)
    assert not verify(got["headers"], got["body"], "another secret")
    event = json.loads(got["body"])
    assert event["type"] == "message.delivered"
    assert got["headers"]["X-Smsapp-Event"] == "message.delivered"
    assert got["headers"]["X-Smsapp-Delivery"] == event["id"]
    assert (event["data"]["id"], event["data"]["contact_id"], event["data"]["status"]) == (
        row.pk,
        contact.pk,
        "delivered",
    )
    assert Delivery.objects.get().status == "delivered"


def test_a_failed_delivery_is_retried_with_backoff_then_delivered(receiver: Receiver, settings: Any) -> None:
    settings.WEBHOOKS_RETRY_BASE_SECONDS = 30
    receiver.answers = [500, 503]
    hook = endpoint(receiver.url, ["reply.received"])
    services.hooks_emit(event_type="reply.received", payloads=[{"body": "hi"}])
    # The delay (80-100% of the base: jitter) counts from when the attempt failed, between these two instants.
    before = timezone.now()
    assert deliver_all() == {"delivered": 0, "retry": 1, "failed": 0, "deferred": 0}
    after = timezone.now()
    first = Delivery.objects.get()
    assert (first.status, first.attempts, first.response_status, first.error) == ("pending", 1, 500, "HTTP 500")
    assert first.next_attempt_at is not None
    assert (first.next_attempt_at - before).total_seconds() >= 24
    assert (first.next_attempt_at - after).total_seconds() <= 30
    assert deliver_all()["retry"] == 0  # not due yet: nothing posted
    Delivery.objects.update(next_attempt_at=timezone.now())
    before = timezone.now()
    deliver_all()
    second = Delivery.objects.get()
    assert second.next_attempt_at is not None
    assert 96 <= (second.next_attempt_at - before).total_seconds() <= 120 + (timezone.now() - before).total_seconds()
    Delivery.objects.update(next_attempt_at=timezone.now())
    assert deliver_all()["delivered"] == 1
    assert [json.loads(r["body"])["id"] for r in receiver.received] == [str(first.event_id)] * 3  # dedupe on the id
    assert Delivery.objects.get(endpoint=hook).attempts == 3


def test_it_gives_up_after_a_day(receiver: Receiver) -> None:
    receiver.answers = [500]
    endpoint(receiver.url, ["reply.received"])
    services.hooks_emit(event_type="reply.received", payloads=[{"body": "hi"}])
    Delivery.objects.update(created_at=timezone.now() - dt.timedelta(hours=23, minutes=59), attempts=9)
    assert deliver_all()["failed"] == 1
    failed = Delivery.objects.get()
    assert failed.status == "failed"
    assert failed.error == "Gave up after 10 attempts: HTTP 500"


def test_a_dead_endpoint_is_tried_once_per_batch(settings: Any) -> None:
    settings.WEBHOOKS_TIMEOUT_SECONDS = 1
    endpoint("http://127.0.0.1:9/nothing-listens", ["reply.received"])
    services.hooks_emit(event_type="reply.received", payloads=[{"n": i} for i in range(5)])
    assert deliver_all() == {"delivered": 0, "retry": 1, "failed": 0, "deferred": 4}
    assert Delivery.objects.filter(error="Could not connect to the endpoint.").count() == 1


def test_opt_out_and_in_events_from_every_source(receiver: Receiver, django_capture_on_commit_callbacks: Any) -> None:
    endpoint(receiver.url, ["contact.opted_out", "contact.opted_in"])
    contact = Contact.objects.create(first_name="Ada", mobile="+14155550101")
    with mock.patch("hooks.tasks.deliver_task.apply_async"), django_capture_on_commit_callbacks(execute=True):
        dnc_add(contact=contact, reason="manual", source="marketer")
        dnc_remove(contact=contact, source="marketer")
    deliver_all()
    types = sorted(json.loads(r["body"])["type"] for r in receiver.received)
    assert types == ["contact.opted_in", "contact.opted_out"]
    data = json.loads(receiver.received[0]["body"])["data"]
    assert (data["contact_id"], data["mobile"], data["channel"], data["source"]) == (
        contact.pk, "+14155550101", "sms", "marketer"
    )  # fmt: skip


def test_a_status_callback_nobody_subscribed_to_costs_no_query(django_assert_num_queries: Any) -> None:
    services.subscribed("message.delivered")  # the per-process list is loaded once
    with django_assert_num_queries(0):
        message_status_changed.send(sender=OutboundMessage, message_ids=[1, 2, 3], status=Status.DELIVERED)


def test_the_settings_page_shows_the_secret_once_sends_a_test_and_logs_it(
    admin_client: Client, marketer_client: Client, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    assert marketer_client.get("/settings/webhooks/").status_code == 403
    with mock.patch("hooks.tasks.deliver_task.apply_async"), django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/settings/webhooks/", {"url": receiver.url, "events": ["link.clicked"], "active": "on"}, follow=True
        )
    hook = Endpoint.objects.get()
    secret = services.decrypt(hook.secret_encrypted)
    assert secret.startswith("whsec_")
    assert secret in response.content.decode()
    assert secret not in admin_client.get(f"/settings/webhooks/{hook.pk}/").content.decode()  # shown once
    with mock.patch("hooks.tasks.deliver_task.apply_async"), django_capture_on_commit_callbacks(execute=True):
        admin_client.post(f"/settings/webhooks/{hook.pk}/test/")
    deliver_all()
    (got,) = receiver.received
    assert json.loads(got["body"])["type"] == "test"
    assert verify(got["headers"], got["body"], secret)
    log = admin_client.get(f"/settings/webhooks/{hook.pk}/log/").content.decode()
    assert "<code>test</code>" in log
    assert "HTTP 200" in log
    bad = admin_client.post("/settings/webhooks/", {"url": "ftp://x.example/", "events": []})
    assert set(bad.context["form"].errors) == {"url", "events"}  # each named on the page, nothing saved
    assert Endpoint.objects.count() == 1
