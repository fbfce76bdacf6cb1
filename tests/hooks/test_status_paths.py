"""A status becomes one webhook event, whichever way it comes: a status callback applied in the request
(``texts.inbound.outbound_status_apply``) or through the status buffer (``texts.status_buffer``, whose batch sends
``message_status_changed`` after commit), repeated or not."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from django.utils import timezone

from contacts.models import Contact
from hooks import services
from hooks.models import Delivery, Endpoint
from providers.base import DeliveryState, StatusEvent
from providers.twilio.testing import sid
from texts.inbound import outbound_status_apply
from texts.models import OutboundMessage, Source, Status
from texts.status_buffer import BufferedStatus, outbound_statuses_apply

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def _sent(mobile: str) -> OutboundMessage:
    contact = Contact.objects.create(first_name="Ada", mobile=mobile)
    return OutboundMessage.objects.create(
        contact=contact,
        to_number=mobile,
        source=Source.API,
        status=Status.SENT,
        provider_sid=sid(),
        sent_at=timezone.now(),
        provider_called_at=timezone.now(),
    )


def _events() -> list[tuple[str, int]]:
    return sorted((d.event_type, d.payload["data"]["id"]) for d in Delivery.objects.all())


@pytest.fixture(autouse=True)
def subscribed() -> Iterator[None]:
    services.endpoint_save(
        endpoint=Endpoint(url="http://127.0.0.1:9/hooks", events=["message.delivered", "message.failed"]),
        secret="whsec_test",
    )
    # The deliveries stay in the table (their tasks are not run): what was emitted is what the test reads.
    with mock.patch("hooks.tasks.deliver_task.apply_async"):
        yield


def test_a_status_applied_in_the_request_is_one_event_however_often_it_comes(
    django_capture_on_commit_callbacks: Any,
) -> None:
    message = _sent("+14155550101")
    event = StatusEvent(message_sid=str(message.provider_sid), status=DeliveryState.DELIVERED, provider="twilio")
    with django_capture_on_commit_callbacks(execute=True):
        assert outbound_status_apply(event=event) is True
        assert outbound_status_apply(event=event) is False  # the provider's retry: no move, no event
    assert _events() == [("message.delivered", message.pk)]


def test_a_buffered_status_is_one_event_however_often_it_comes(django_capture_on_commit_callbacks: Any) -> None:
    delivered, failed = _sent("+14155550102"), _sent("+14155550103")

    def status(message: OutboundMessage, to: str, code: str = "") -> BufferedStatus:
        return BufferedStatus(
            message_sid=str(message.provider_sid),
            status=to,
            error_code=code,
            received_at=time.time(),
            provider="twilio",
        )

    batch = [
        status(delivered, Status.DELIVERED),
        status(delivered, Status.DELIVERED),
        status(failed, Status.FAILED, "30003"),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        outbound_statuses_apply(statuses=batch)
    with django_capture_on_commit_callbacks(execute=True):
        outbound_statuses_apply(statuses=batch)  # a flusher's batch applied again after a crash
    assert _events() == sorted([("message.delivered", delivered.pk), ("message.failed", failed.pk)])
