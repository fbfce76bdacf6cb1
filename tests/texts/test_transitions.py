"""Every status transition, allowed and refused, on the model rule and in the database."""

from __future__ import annotations

import pytest

from texts.models import ALLOWED_FROM, OutboundMessage, Status
from texts.services import outbound_transition

pytestmark = pytest.mark.django_db

ALL = [s.value for s in Status]
PAIRS = [(src, dst) for src in ALL for dst in ALL if src != dst]


def make(status: str) -> OutboundMessage:
    return OutboundMessage.objects.create(to_number="+14155550100", source="test", status=status)


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_transition_allowed_or_refused(src: str, dst: str) -> None:
    message = make(src)
    allowed = src in ALLOWED_FROM[dst]
    assert message.can_transition_to(dst) is allowed
    moved = outbound_transition(message_ids=[message.pk], to=dst)
    message.refresh_from_db()
    if allowed:
        assert moved == [message.pk]
        assert message.status == dst
    else:
        assert moved == []
        assert message.status == src


def test_terminal_statuses_never_move_backwards() -> None:
    for terminal in (Status.DELIVERED, Status.UNDELIVERED, Status.FAILED):
        message = make(terminal)
        for target in (Status.QUEUED, Status.SENDING, Status.SENT, Status.UNKNOWN):
            assert outbound_transition(message_ids=[message.pk], to=target) == []
        message.refresh_from_db()
        assert message.status == terminal


def test_late_sent_after_delivered_changes_nothing() -> None:
    message = make(Status.SENDING)
    assert outbound_transition(message_ids=[message.pk], to=Status.SENT, provider_sid="SM1")
    assert outbound_transition(message_ids=[message.pk], to=Status.DELIVERED)
    assert outbound_transition(message_ids=[message.pk], to=Status.SENT) == []
    message.refresh_from_db()
    assert message.status == Status.DELIVERED
    assert message.sent_at is not None
    assert message.delivered_at is not None
    assert message.rank > OutboundMessage(status=Status.SENT).rank


def test_transition_stamps_its_own_timestamp_only() -> None:
    message = make(Status.SENDING)
    outbound_transition(message_ids=[message.pk], to=Status.FAILED, error_code="21211", error_message="Invalid")
    message.refresh_from_db()
    assert message.failed_at is not None
    assert message.sent_at is None
    assert (message.error_code, message.error_message) == ("21211", "Invalid")


def test_unknown_is_reached_only_from_sending() -> None:
    assert ALLOWED_FROM[Status.UNKNOWN] == {Status.SENDING}
    assert not make(Status.QUEUED).can_transition_to(Status.UNKNOWN)
