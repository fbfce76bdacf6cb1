"""API: text messages (texts' own validators), send to a contact, and the outbound message log."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from contacts.models import Contact, Segment
from contacts.services import dnc_add
from smsapp.models import ApiToken
from smsapp.testing import procs
from tests.real_workers import worker_env
from texts.models import OutboundMessage, Source, Status, TextMessage

from .conftest import ApiClient

pytestmark = pytest.mark.django_db

JSON = "application/json"


@pytest.fixture
def make_contact() -> Callable[..., Contact]:
    counter = iter(range(1000, 99999))

    def _make(**fields: Any) -> Contact:
        fields.setdefault("mobile", f"+4479110{next(counter):05d}")
        return Contact.objects.create(**fields)

    return _make


@pytest.fixture
def text() -> TextMessage:
    return TextMessage.objects.create(name="Welcome", body="Hi {{first_name|there}}", category="transactional")


def _post(client: ApiClient, url: str, body: Any) -> Any:
    return client.post(url, body, content_type=JSON)


# Text messages


def test_create_read_and_list_text_messages(api: ApiClient, marketer_user: User) -> None:
    segment = Segment.objects.create(name="All")
    response = _post(
        api,
        "/api/v1/text-messages",
        {
            "name": "Promo",
            "body": "Hello {{first_name|friend}}",
            "segment_ids": [segment.pk],
            "media_urls": ["https://example.com/a.png"],
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["name"], body["category"], body["segment_ids"]) == ("Promo", "marketing", [segment.pk])
    assert body["media_urls"] == ["https://example.com/a.png"]
    assert TextMessage.objects.get(pk=body["id"]).created_by == marketer_user
    assert api.get(f"/api/v1/text-messages/{body['id']}").json() == body
    _post(api, "/api/v1/text-messages", {"name": "Other", "body": "Plain"})
    page = api.get("/api/v1/text-messages", {"limit": 1}).json()
    assert [t["name"] for t in page["items"]] == ["Other"]
    rest = api.get("/api/v1/text-messages", {"cursor": page["next_cursor"]}).json()
    assert [t["name"] for t in rest["items"]] == ["Promo"]
    assert [t["name"] for t in api.get("/api/v1/text-messages", {"q": "pro"}).json()["items"]] == ["Promo"]
    assert api.get(f"/api/v1/text-messages/{body['id'] + 10}").status_code == 404


def test_unknown_token_is_400_naming_it(api: ApiClient) -> None:
    response = _post(api, "/api/v1/text-messages", {"name": "Bad", "body": "Hi {{shoe_size}}"})
    assert response.status_code == 400
    assert "shoe_size" in response.json()["errors"]["body"][0]
    assert not TextMessage.objects.exists()


def test_body_over_1600_characters_is_400(api: ApiClient) -> None:
    response = _post(api, "/api/v1/text-messages", {"name": "Long", "body": "x" * 1601})
    assert response.status_code == 400
    assert "1,600" in response.json()["errors"]["body"][0]
    assert _post(api, "/api/v1/text-messages", {"name": "Max", "body": "x" * 1600}).status_code == 201


def test_bad_fields_each_named(api: ApiClient) -> None:
    response = _post(
        api,
        "/api/v1/text-messages",
        {"name": "X", "body": "ok", "segment_ids": [999], "media_urls": ["not a url"], "category": "spam"},
    )
    assert response.status_code == 400
    assert "category" in response.json()["errors"]
    response = _post(api, "/api/v1/text-messages", {"name": "X", "body": "ok", "segment_ids": [999]})
    assert set(response.json()["errors"]) == {"segment_ids"}
    response = _post(
        api,
        "/api/v1/text-messages",
        {"name": "X", "body": "ok", "publish_up": "2030-01-02T00:00:00Z", "publish_down": "2030-01-01T00:00:00Z"},
    )
    assert set(response.json()["errors"]) == {"publish_down"}


def test_patch_updates_only_the_fields_sent_and_validates(api: ApiClient, text: TextMessage) -> None:
    url = f"/api/v1/text-messages/{text.pk}"
    response = api.patch(url, {"name": "Renamed"}, content_type=JSON)
    assert response.status_code == 200
    text.refresh_from_db()
    assert (text.name, text.body, text.category) == ("Renamed", "Hi {{first_name|there}}", "transactional")
    refused = api.patch(url, {"body": "{{nope}}"}, content_type=JSON)
    assert refused.status_code == 400
    assert "nope" in refused.json()["errors"]["body"][0]
    text.refresh_from_db()
    assert text.body == "Hi {{first_name|there}}"


# Send


def test_send_queues_one_priority_message_after_commit(
    api: ApiClient, text: TextMessage, make_contact: Callable[..., Contact], django_capture_on_commit_callbacks: Any
) -> None:
    contact = make_contact(first_name="Ann")
    with (
        mock.patch("texts.tasks.outbound_send_batch.apply_async") as apply_async,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = _post(api, f"/api/v1/text-messages/{text.pk}/send", {"contact_id": contact.pk})
    assert response.status_code == 202
    body = response.json()
    row = OutboundMessage.objects.get()
    assert body["id"] == row.pk
    assert (body["status"], body["contact_id"], body["to_number"]) == ("queued", contact.pk, str(contact.mobile))
    assert (row.source, row.priority) == (Source.API, True)
    assert row.source_ref.startswith("api-token:")
    apply_async.assert_called_once()
    assert apply_async.call_args.kwargs["queue"] == "sms_priority"
    assert apply_async.call_args.kwargs["args"] == ([row.pk],)


def test_send_refuses_dnc_no_number_unknown_contact_and_unpublished(
    api: ApiClient, text: TextMessage, make_contact: Callable[..., Contact]
) -> None:
    url = f"/api/v1/text-messages/{text.pk}/send"
    opted_out = make_contact()
    dnc_add(contact=opted_out, reason="unsubscribed", source="keyword")
    response = _post(api, url, {"contact_id": opted_out.pk})
    assert response.status_code == 409
    assert "Do Not Contact" in response.json()["errors"]["contact_id"][0]
    no_number = make_contact(mobile=None)
    response = _post(api, url, {"contact_id": no_number.pk})
    assert response.status_code == 409
    assert "no mobile number" in response.json()["errors"]["contact_id"][0]
    response = _post(api, url, {"contact_id": 987654})
    assert response.status_code == 400
    assert "987654" in response.json()["errors"]["contact_id"][0]
    assert _post(api, f"/api/v1/text-messages/{text.pk + 5}/send", {"contact_id": no_number.pk}).status_code == 404
    TextMessage.objects.filter(pk=text.pk).update(is_published=False)
    response = _post(api, url, {"contact_id": make_contact().pk})
    assert response.status_code == 409
    assert "not published" in response.json()["errors"]["text_message_id"][0]
    assert not OutboundMessage.objects.exists()


# Outbound log


def test_outbound_log_filters(api: ApiClient, text: TextMessage, make_contact: Callable[..., Contact]) -> None:
    other_text = TextMessage.objects.create(name="Other", body="Yo")
    ann, bob = make_contact(), make_contact()
    old = timezone.now() - dt.timedelta(days=3)

    def row(contact: Contact, text_message: TextMessage, status: str, queued_at: dt.datetime | None = None) -> int:
        message = OutboundMessage.objects.create(
            contact=contact, to_number=str(contact.mobile), text_message=text_message, source="api", status=status
        )
        if queued_at:
            OutboundMessage.objects.filter(pk=message.pk).update(queued_at=queued_at)
        return message.pk

    a1 = row(ann, text, Status.SENT, old)
    a2 = row(ann, other_text, Status.FAILED)
    b1 = row(bob, text, Status.DELIVERED)

    def ids(**params: Any) -> list[int]:
        response = api.get("/api/v1/outbound-messages", params)
        assert response.status_code == 200, response.json()
        return [item["id"] for item in response.json()["items"]]

    assert ids() == [b1, a2, a1]
    assert ids(contact=ann.pk) == [a2, a1]
    assert ids(text_message=text.pk) == [b1, a1]
    assert ids(status="failed") == [a2]
    since = (timezone.now() - dt.timedelta(days=1)).isoformat()
    assert ids(since=since) == [b1, a2]
    assert ids(until=since) == [a1]
    assert ids(contact=ann.pk, status="sent", until=since) == [a1]
    assert api.get("/api/v1/outbound-messages", {"status": "lost"}).status_code == 400
    assert api.get("/api/v1/outbound-messages", {"since": "yesterday"}).status_code == 400
    assert api.get("/api/v1/outbound-messages", {"until": "0.5"}).status_code == 400
    assert api.get("/api/v1/outbound-messages", {"since": "9999-12-31T23:59:59-12:00"}).status_code == 400
    assert api.get(f"/api/v1/outbound-messages/{a2}").json()["status"] == "failed"
    assert api.get(f"/api/v1/outbound-messages/{b1 + 10}").status_code == 404


# End to end: a real worker sends through the pipeline to fake_twilio


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_send_reaches_fake_twilio_through_a_real_worker(fake_twilio_process: Any, marketer_user: User) -> None:
    fake = fake_twilio_process
    contact = Contact.objects.create(first_name="Zed", mobile="+12125550123", country="US")
    text = TextMessage.objects.create(name="Receipt", body="Thanks {{first_name}}", category="transactional")
    client = ApiClient(ApiToken.issue(user=marketer_user, name="e2e")[1])
    env = worker_env(
        fake,
    )
    worker = procs.start_worker(queues="sms_priority", concurrency=1, env=env)
    try:
        response = _post(client, f"/api/v1/text-messages/{text.pk}/send", {"contact_id": contact.pk})
        assert response.status_code == 202
        message_id = response.json()["id"]
        status = "queued"
        for _ in range(300):  # bounded: at most ~30 s
            status = client.get(f"/api/v1/outbound-messages/{message_id}").json()["status"]
            if status not in {"queued", "sending"}:
                break
            time.sleep(0.1)
    finally:
        worker.stop()
    assert status in {"sent", "delivered"}
    sent = [m for m in fake.messages() if m.get("to") == "+12125550123" or m.get("To") == "+12125550123"]
    assert len(sent) == 1
    assert "Thanks Zed" in str(sent[0])
