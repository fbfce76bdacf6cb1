"""Suppression by address through the real pipeline (issue 17): a contact deleted after STOP and created again gets
nothing at fake_twilio, neither from what was queued before nor from a new send; its neighbour still does."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from contacts.models import Contact
from contacts.services import dnc_add
from smsapp.models import ApiToken
from smsapp.testing import procs
from tests.real_workers import worker_env
from texts.models import OutboundMessage, Status, TextMessage
from texts.services.outbound import outbound_enqueue

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

STOPPED, OTHER = "+14155552301", "+14155552399"
JSON = "application/json"


def _worker_env(fake: Any) -> dict[str, str]:
    return worker_env(
        fake,
    )


def _wait_until_settled(ids: list[int]) -> dict[int, OutboundMessage]:
    for _ in range(300):  # bounded: at most ~30 s
        rows = {m.pk: m for m in OutboundMessage.objects.filter(pk__in=ids)}
        if all(m.status not in {Status.QUEUED, Status.SENDING} for m in rows.values()):
            return rows
        time.sleep(0.1)
    raise AssertionError(f"still waiting: {list(OutboundMessage.objects.filter(pk__in=ids).values('pk', 'status'))}")


def test_delete_and_recreate_keeps_the_opt_out_and_nothing_reaches_fake_twilio(
    fake_twilio_process: Any, admin_user: User
) -> None:
    fake = fake_twilio_process
    api = Client(HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(user=admin_user, name='e2e')[1]}")
    stopped = Contact.objects.create(first_name="Sam", mobile=STOPPED)
    other = Contact.objects.create(first_name="Tia", mobile=OTHER)
    text = TextMessage.objects.create(name="Receipt", body="Thanks {{first_name}}", category="transactional")
    # Queued for both before the STOP: the claim-time check must stop the first, whose contact is gone by then.
    assert outbound_enqueue(text_message=text, contacts=[stopped.pk, other.pk], source="api") == 2
    ids = list(OutboundMessage.objects.values_list("pk", flat=True))
    dnc_add(contact=stopped, reason="unsubscribed", source="keyword")
    assert api.delete(f"/api/v1/contacts/{stopped.pk}").status_code == 204
    created = api.post("/api/v1/contacts", json.dumps({"first_name": "Sam", "mobile": STOPPED}), content_type=JSON)
    assert created.status_code == 201
    assert created.json()["dnc_sms"] is True
    again = created.json()["id"]
    refused = api.post(f"/api/v1/text-messages/{text.pk}/send", json.dumps({"contact_id": again}), content_type=JSON)
    assert refused.status_code in {400, 409, 422}, refused.content

    worker = procs.start_worker(queues="sms_priority,sms_bulk", concurrency=1, env=_worker_env(fake))
    try:
        rows = _wait_until_settled(ids)
    finally:
        worker.stop()
    by_number = {m.to_number: m for m in rows.values()}
    assert by_number[STOPPED].status == Status.FAILED
    assert by_number[STOPPED].error_code == "do_not_contact"
    assert by_number[OTHER].status in {Status.SENT, Status.DELIVERED}
    sent_to = [m.get("to") or m.get("To") for m in fake.messages()]
    assert sent_to == [OTHER]
