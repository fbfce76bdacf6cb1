"""A status callback that overtakes the worker's own write of the SID is not lost (the URL names the message)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from django.test import Client
from django.utils import timezone

from contacts.models import Contact, TimelineEvent
from providers.base import SendResult, StatusEvent
from providers.twilio.testing import PATH, configure, sid, sign, status_params
from texts import services
from texts.inbound import outbound_status_apply
from texts.models import OutboundMessage, Source, Status, TextMessage
from texts.services import dispatch

from .conftest import Pipeline

pytestmark = pytest.mark.django_db


def _in_flight(contact: Contact, status: str = Status.SENDING) -> OutboundMessage:
    """A message whose worker called the provider but has not written the SID yet."""
    return OutboundMessage.objects.create(
        contact=contact,
        to_number=str(contact.mobile),
        source=Source.TEST,
        status=status,
        provider_called_at=timezone.now(),
    )


def _post(client: Client, params: dict[str, str], query: str) -> Any:
    from django.conf import settings

    url = settings.PUBLIC_BASE_URL + PATH + query
    return client.post(PATH + query, data=params, HTTP_X_TWILIO_SIGNATURE=sign(params, url=url))


def test_status_callback_with_the_message_id_attaches_the_sid_and_moves_it(
    client: Client, settings: Any, make_contact: Callable[..., Contact]
) -> None:
    configure(settings)
    row = _in_flight(make_contact())
    message_sid = sid()
    response = _post(client, status_params(message_sid, "delivered", to=row.to_number), f"?m={row.pk}")
    assert response.status_code == 200
    row.refresh_from_db()
    assert (row.provider_sid, row.status) == (message_sid, Status.DELIVERED)


def test_without_the_message_id_an_unknown_sid_changes_nothing(
    client: Client, settings: Any, make_contact: Callable[..., Contact]
) -> None:
    configure(settings)
    row = _in_flight(make_contact())
    assert _post(client, status_params(sid(), "delivered", to=row.to_number), "").status_code == 200
    row.refresh_from_db()
    assert (row.provider_sid, row.status) == (None, Status.SENDING)


def test_a_late_callback_resolves_an_unknown_outcome(make_contact: Callable[..., Contact]) -> None:
    row = _in_flight(make_contact(), status=Status.UNKNOWN)
    event = StatusEvent(message_sid=sid(), status="delivered")
    assert outbound_status_apply(event=event, outbound_id=row.pk)
    row.refresh_from_db()
    assert row.status == Status.DELIVERED


def test_the_message_id_never_steals_a_message_that_has_its_sid(make_contact: Callable[..., Contact]) -> None:
    row = _in_flight(make_contact())
    OutboundMessage.objects.filter(pk=row.pk).update(provider_sid="SM" + "1" * 32, status=Status.SENT)
    assert not outbound_status_apply(
        event=StatusEvent(message_sid="SM" + "2" * 32, status="failed"), outbound_id=row.pk
    )
    row.refresh_from_db()
    assert (row.provider_sid, row.status) == ("SM" + "1" * 32, Status.SENT)


@contextlib.contextmanager
def _callbacks_before_the_write(event_for: Callable[[str], StatusEvent]) -> Iterator[None]:
    """Apply each sent message's status callback (through the message id its callback URL carries) between the
    provider's answer and the worker's write of the outcome: the race a fast callback wins."""
    real = dispatch._write_outcomes

    def callback_first(finished: list[tuple[OutboundMessage, Any]], outcome: Any, **kwargs: Any) -> None:
        for row, result in finished:
            if isinstance(result, SendResult):
                assert outbound_status_apply(event=event_for(result.sid), outbound_id=row.pk)
        real(finished, outcome, **kwargs)

    with mock.patch.object(dispatch, "_write_outcomes", callback_first):
        yield


def test_a_callback_that_overtakes_the_worker_keeps_its_status_and_the_send_is_recorded(
    pipeline: Pipeline, transactional_text: TextMessage, make_contact: Callable[..., Contact]
) -> None:
    pipeline.config.status_callback_url = "https://sms.example.com/sms/twilio/callback"
    contact = make_contact()
    services.outbound_enqueue(text_message=transactional_text, contacts=[contact.pk], source="api")
    ids = list(OutboundMessage.objects.values_list("pk", flat=True))
    # Twilio's "delivered" callback lands after Twilio accepted the message and before the worker writes the SID.
    with _callbacks_before_the_write(lambda sid: StatusEvent(message_sid=sid, status="delivered")):
        outcome = services.outbound_process_batch(message_ids=ids, **pipeline.kwargs())
    row = OutboundMessage.objects.get()
    assert outcome.sent == ids
    assert row.status == Status.DELIVERED
    assert row.provider_sid
    assert row.price is not None
    assert row.sent_at is not None
    assert pipeline.provider.requests[0].status_callback == f"https://sms.example.com/sms/twilio/callback?m={row.pk}"
    assert TimelineEvent.objects.filter(contact=contact, kind="sms.sent").count() == 1


def test_a_failed_callback_that_overtakes_the_worker_leaves_one_sent_and_one_failed_entry(
    pipeline: Pipeline, transactional_text: TextMessage, make_contact: Callable[..., Contact]
) -> None:
    """Twilio accepted the message, then the carrier failed it (30006) before the worker wrote the SID: the timeline
    says sent, then failed, once each; never "not sent" (found by the end-to-end scenario)."""
    pipeline.config.status_callback_url = "https://sms.example.com/sms/twilio/callback"
    contact = make_contact()
    services.outbound_enqueue(text_message=transactional_text, contacts=[contact.pk], source="api")
    ids = list(OutboundMessage.objects.values_list("pk", flat=True))
    with _callbacks_before_the_write(lambda sid: StatusEvent(message_sid=sid, status="failed", error_code="30006")):
        outcome = services.outbound_process_batch(message_ids=ids, **pipeline.kwargs())
    assert (outcome.sent, outcome.failed) == (ids, [])
    assert OutboundMessage.objects.get().status == Status.FAILED
    entries = list(
        TimelineEvent.objects.filter(contact=contact, kind__startswith="sms.")
        .order_by("id")
        .values_list("kind", "title")
    )
    assert [kind for kind, _ in entries] == ["sms.failed", "sms.sent"]  # the callback's entry was written first
    assert not any("not sent" in title for _, title in entries)
