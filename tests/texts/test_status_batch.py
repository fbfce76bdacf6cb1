"""The buffered status callbacks' batch apply (``texts.status_buffer.outbound_statuses_apply``): one set-based
statement per batch that does exactly what applying the same callbacks one by one through the synchronous path does.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.utils import timezone

from contacts.models import Contact, DoNotContact, TimelineEvent
from contacts.services import contact_is_dnc
from providers.base import StatusEvent
from providers.twilio.testing import sid
from texts.inbound import STATUS_OF_STATE, outbound_status_apply
from texts.models import OutboundMessage, Source, Status, TextMessage
from texts.signals import message_status_changed
from texts.status_buffer import BatchResult, BufferedStatus, outbound_statuses_apply

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def _message(
    contact: Contact | None, *, status: str = Status.SENT, text: TextMessage | None = None, with_sid: bool = True
) -> OutboundMessage:
    return OutboundMessage.objects.create(
        contact=contact,
        to_number=str(contact.mobile) if contact else "+14155550999",
        text_message=text,
        source=Source.API,
        status=status,
        provider_sid=sid() if with_sid else None,
        sent_at=timezone.now() if status == Status.SENT else None,
        provider_called_at=timezone.now(),
    )


def _status(
    message: OutboundMessage | str, state: str, *, error_code: str = "", hint: int | None = None
) -> BufferedStatus:
    message_sid = message if isinstance(message, str) else str(message.provider_sid)
    return BufferedStatus(
        message_sid=message_sid,
        status=STATUS_OF_STATE[state],
        error_code=error_code,
        outbound_id=hint,
        received_at=time.time(),
        provider="twilio",  # whose error codes these are (21610: unsubscribed)
    )


@pytest.fixture
def apply(django_capture_on_commit_callbacks: Any) -> Callable[..., BatchResult]:
    """``outbound_statuses_apply`` with what it leaves for after commit (the signal) run as a commit would."""

    def _apply(*, statuses: list[BufferedStatus]) -> BatchResult:
        with django_capture_on_commit_callbacks(execute=True):
            return outbound_statuses_apply(statuses=statuses)

    return _apply


@pytest.fixture
def changes() -> Iterator[list[tuple[str, list[int]]]]:
    """The ``message_status_changed`` signals sent: (status, message ids)."""
    seen: list[tuple[str, list[int]]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        seen.append((kwargs["status"], sorted(kwargs["message_ids"])))

    message_status_changed.connect(receiver)
    yield seen
    message_status_changed.disconnect(receiver)


def _entries(contact: Contact, kind: str) -> int:
    return TimelineEvent.objects.filter(contact=contact, kind=kind).count()


def test_a_batch_moves_each_message_forward_only(
    make_contact: Callable[..., Contact], changes: list[tuple[str, list[int]]], apply: Callable[..., BatchResult]
) -> None:
    a, b, c = make_contact(), make_contact(), make_contact()
    to_deliver, already_sent, already_delivered = _message(a), _message(b), _message(c, status=Status.DELIVERED)
    result = apply(
        statuses=[
            _status(to_deliver, "delivered"),
            _status(already_sent, "sent"),  # Twilio's `sent` after the worker's own: no move
            _status(already_delivered, "failed", error_code="30003"),  # a late failure never overrides a delivery
        ]
    )
    statuses = dict(OutboundMessage.objects.values_list("pk", "status"))
    assert statuses == {
        to_deliver.pk: Status.DELIVERED,
        already_sent.pk: Status.SENT,
        already_delivered.pk: Status.DELIVERED,
    }
    assert result.moved == {Status.DELIVERED: [to_deliver.pk]}
    assert (_entries(a, "sms.delivered"), _entries(b, "sms.delivered"), _entries(c, "sms.failed")) == (1, 0, 0)
    assert OutboundMessage.objects.get(pk=already_delivered.pk).error_code == ""
    assert changes == [(Status.DELIVERED, [to_deliver.pk])]


def test_duplicates_in_one_batch_move_the_message_once(
    make_contact: Callable[..., Contact], changes: list[tuple[str, list[int]]], apply: Callable[..., BatchResult]
) -> None:
    contact = make_contact()
    message = _message(contact, text=TextMessage.objects.create(name="Spring sale", body="Hi"))
    apply(statuses=[_status(message, "delivered") for _ in range(3)])
    message.refresh_from_db()
    assert message.status == Status.DELIVERED
    entry = TimelineEvent.objects.get(contact=contact, kind="sms.delivered")
    assert entry.title == "Text message delivered: Spring sale"
    assert entry.detail == {"outbound_id": message.pk, "status": "delivered", "error_code": ""}
    assert changes == [(Status.DELIVERED, [message.pk])]


@pytest.mark.parametrize("order", [("sent", "delivered"), ("delivered", "sent")])
def test_out_of_order_sent_and_delivered_in_one_batch_end_delivered(
    make_contact: Callable[..., Contact], order: tuple[str, str]
) -> None:
    # From `unknown` (the worker died after calling Twilio) both statuses could move the message: the higher wins.
    contact = make_contact()
    message = _message(contact, status=Status.UNKNOWN)
    outbound_statuses_apply(statuses=[_status(message, s) for s in order])
    message.refresh_from_db()
    assert message.status == Status.DELIVERED
    assert message.delivered_at is not None
    assert _entries(contact, "sms.delivered") == 1


def test_of_two_final_statuses_in_one_batch_the_first_wins_as_one_by_one(make_contact: Callable[..., Contact]) -> None:
    contact = make_contact()
    message = _message(contact)
    outbound_statuses_apply(
        statuses=[_status(message, "undelivered", error_code="30005"), _status(message, "delivered")]
    )
    message.refresh_from_db()
    assert (message.status, message.error_code) == (Status.UNDELIVERED, "30005")
    assert _entries(contact, "sms.failed") == 1
    assert _entries(contact, "sms.delivered") == 0


def test_the_status_is_stamped_with_the_time_the_callback_came(make_contact: Callable[..., Contact]) -> None:
    message = _message(make_contact())
    status = _status(message, "delivered")
    came = BufferedStatus(**{**status.__dict__, "received_at": time.time() - 42})
    outbound_statuses_apply(statuses=[came])
    message.refresh_from_db()
    assert message.delivered_at is not None
    assert abs(message.delivered_at.timestamp() - came.received_at) < 0.01
    assert message.updated_at.timestamp() > came.received_at + 40
    entry = TimelineEvent.objects.get(kind="sms.delivered")
    assert abs(entry.occurred_at.timestamp() - came.received_at) < 0.01


def test_the_message_id_attaches_the_sid_of_a_message_in_flight(make_contact: Callable[..., Contact]) -> None:
    contact = make_contact()
    in_flight = _message(contact, status=Status.SENDING, with_sid=False)
    unknown = _message(make_contact(), status=Status.UNKNOWN, with_sid=False)
    first, second = sid(), sid()
    outbound_statuses_apply(
        statuses=[
            _status(first, "sent", hint=in_flight.pk),
            _status(first, "delivered", hint=in_flight.pk),
            _status(second, "failed", error_code="30006", hint=unknown.pk),
        ]
    )
    in_flight.refresh_from_db()
    unknown.refresh_from_db()
    assert (in_flight.provider_sid, in_flight.status) == (first, Status.DELIVERED)
    assert (unknown.provider_sid, unknown.status, unknown.error_code) == (second, Status.FAILED, "30006")
    assert _entries(contact, "sms.delivered") == 1


def test_the_message_id_never_steals_a_message_that_has_its_sid(make_contact: Callable[..., Contact]) -> None:
    owner = _message(make_contact())
    own_sid = owner.provider_sid
    never_called = _message(make_contact(), status=Status.QUEUED, with_sid=False)
    OutboundMessage.objects.filter(pk=never_called.pk).update(provider_called_at=None)
    result = outbound_statuses_apply(
        statuses=[_status(sid(), "failed", hint=owner.pk), _status(sid(), "delivered", hint=never_called.pk)]
    )
    owner.refresh_from_db()
    never_called.refresh_from_db()
    assert (owner.provider_sid, owner.status) == (own_sid, Status.SENT)
    assert (never_called.provider_sid, never_called.status) == (None, Status.QUEUED)
    assert len(result.unknown) == 2


def test_21610_marks_the_recipient_do_not_contact_once(make_contact: Callable[..., Contact]) -> None:
    contact = make_contact()
    message = _message(contact)
    result = outbound_statuses_apply(
        statuses=[_status(message, "failed", error_code="21610"), _status(message, "failed", error_code="21610")]
    )
    assert result.opted_out == [contact.pk]
    entry = DoNotContact.objects.get(contact=contact)
    assert (entry.reason, entry.source) == ("unsubscribed", "provider")
    assert _entries(contact, "dnc.added") == 1
    # Repeated in a later batch (Twilio retried, the message no longer moves): still marked, still once.
    again = outbound_statuses_apply(statuses=[_status(message, "failed", error_code="21610")])
    assert again.moved == {}
    assert again.opted_out == []
    assert contact_is_dnc(contact=contact)
    assert DoNotContact.objects.filter(contact=contact).count() == 1


def test_a_21610_for_a_message_that_cannot_move_still_opts_the_recipient_out(
    make_contact: Callable[..., Contact],
) -> None:
    # As on the synchronous path: the carrier says the person unsubscribed, whatever became of this message.
    contact = make_contact()
    message = _message(contact, status=Status.DELIVERED)
    outbound_statuses_apply(statuses=[_status(message, "failed", error_code="21610")])
    assert contact_is_dnc(contact=contact)
    assert OutboundMessage.objects.get(pk=message.pk).status == Status.DELIVERED


def test_unknown_sids_are_logged_and_change_nothing(
    make_contact: Callable[..., Contact], caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="texts.status_buffer")
    message = _message(make_contact())
    stranger = "SM" + "0" * 32
    result = outbound_statuses_apply(statuses=[_status(stranger, "delivered"), _status(message, "delivered")])
    assert result.unknown == [stranger]
    assert stranger in caplog.text
    assert OutboundMessage.objects.get(pk=message.pk).status == Status.DELIVERED


def test_a_message_without_a_contact_moves_without_a_timeline_entry() -> None:
    message = _message(None)
    outbound_statuses_apply(statuses=[_status(message, "undelivered", error_code="30003")])
    message.refresh_from_db()
    assert (message.status, message.error_code) == (Status.UNDELIVERED, "30003")
    assert not TimelineEvent.objects.exists()


def test_applying_a_batch_again_changes_nothing_more(
    make_contact: Callable[..., Contact], changes: list[tuple[str, list[int]]], apply: Callable[..., BatchResult]
) -> None:
    """At least once: a flusher that died after its commit and before it removed the batch from the buffer has the
    batch applied again by the next one."""
    contact = make_contact()
    message = _message(contact)
    batch = [_status(message, "sent"), _status(message, "delivered"), _status(message, "failed", error_code="21610")]
    apply(statuses=batch)
    before = list(TimelineEvent.objects.order_by("id").values_list("kind", flat=True))
    result = apply(statuses=batch)
    assert result.moved == {}
    assert list(TimelineEvent.objects.order_by("id").values_list("kind", flat=True)) == before
    assert changes == [(Status.DELIVERED, [message.pk])]
    assert DoNotContact.objects.filter(contact=contact).count() == 1


def test_one_signal_per_status_for_the_whole_batch(
    make_contact: Callable[..., Contact], changes: list[tuple[str, list[int]]], apply: Callable[..., BatchResult]
) -> None:
    delivered = [_message(make_contact()) for _ in range(3)]
    failed = [_message(make_contact()) for _ in range(2)]
    sent = [_message(make_contact(), status=Status.UNKNOWN) for _ in range(2)]
    apply(
        statuses=[_status(m, "delivered") for m in delivered]
        + [_status(m, "failed", error_code="30008") for m in failed]
        + [_status(m, "sent") for m in sent]
    )
    assert sorted(changes) == sorted(
        [
            (Status.DELIVERED, sorted(m.pk for m in delivered)),
            (Status.FAILED, sorted(m.pk for m in failed)),
            (Status.SENT, sorted(m.pk for m in sent)),
        ]
    )


def test_a_batch_ends_where_the_same_callbacks_one_by_one_end(make_contact: Callable[..., Contact]) -> None:
    """Twin messages in every starting status get the same random callbacks (duplicates, any order, error codes,
    the message id): one twin through the synchronous path one by one, the other in one batch."""
    rng = random.Random(1414)
    starts = [Status.QUEUED, Status.SENDING, Status.UNKNOWN, Status.SENT, Status.DELIVERED, Status.FAILED]
    # (twin applied one by one, twin applied in the batch, the SIDs their callbacks attach through the message id)
    twins: list[tuple[OutboundMessage, OutboundMessage, tuple[str, str]]] = []
    for i in range(60):
        start = starts[i % len(starts)]
        hinted = start in (Status.SENDING, Status.UNKNOWN) and rng.random() < 0.5
        pair = [_message(make_contact(), status=start, with_sid=not hinted) for _ in range(2)]
        twins.append((pair[0], pair[1], (sid(), sid()) if hinted else ("", "")))
    one_by_one: list[tuple[StatusEvent, int | None]] = []
    batch: list[BufferedStatus] = []
    for single, batched, (new_sid, batched_new_sid) in twins:
        for _ in range(rng.randint(1, 5)):
            state = rng.choice(list(STATUS_OF_STATE))
            error = rng.choice(["", "", "30003", "21610"]) if STATUS_OF_STATE[state] != Status.SENT else ""
            one_by_one.append(
                (
                    StatusEvent(
                        message_sid=new_sid or str(single.provider_sid),
                        status=state,
                        error_code=error,
                        provider="twilio",
                    ),
                    single.pk if new_sid else None,
                )
            )
            batch.append(
                BufferedStatus(
                    message_sid=batched_new_sid or str(batched.provider_sid),
                    status=STATUS_OF_STATE[state],
                    error_code=error,
                    outbound_id=batched.pk if new_sid else None,
                    received_at=time.time(),
                    provider="twilio",
                )
            )
    order = list(range(len(batch)))
    rng.shuffle(order)
    one_by_one = [one_by_one[i] for i in order]
    batch = [batch[i] for i in order]
    for event, hint in one_by_one:
        outbound_status_apply(event=event, outbound_id=hint)
    outbound_statuses_apply(statuses=batch)

    def outcome(row: OutboundMessage) -> tuple[Any, ...]:
        row.refresh_from_db()
        assert row.contact is not None
        kinds = sorted(TimelineEvent.objects.filter(contact=row.contact).values_list("kind", flat=True))
        return (row.status, row.error_code, bool(row.provider_sid), contact_is_dnc(contact=row.contact), kinds)

    for single, batched, _ in twins:
        assert outcome(single) == outcome(batched), (single.pk, batched.pk)
