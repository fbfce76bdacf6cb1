"""A call's steps in a real worker (the stamper thread's path, outside any test transaction): the "provider called"
stamp is committed first, then the sender's slot is reserved, then the request leaves at that slot.

In that order nothing but the wait for the slot stands between the reservation and the request, so the requests leave
at their slots' spacing and the sender's rate holds at the provider. Reserved before the stamp, a slot was followed by
a stamp round of a few to tens of milliseconds (another thread, a commit, the GIL), and those varying delays bunched
requests: bench/dispatch.py counted 106 messages in one second at fake_twilio on a 100/s short code. A stamp whose
call then does not go (the slot was taken meanwhile, the limiter unreachable) is taken back: nothing reached the
provider, so the attempt does not count and the message is never ``unknown``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest

from contacts.models import Contact
from texts import services
from texts.models import OutboundMessage, Status, TextMessage
from texts.services import dispatch

from .conftest import Pipeline

pytestmark = pytest.mark.django_db(transaction=True)


def _send(pipeline: Pipeline, text: TextMessage, contact: Contact) -> tuple[int, services.BatchOutcome]:
    services.outbound_enqueue(text_message=text, contacts=[contact.pk], source="api")
    pk = OutboundMessage.objects.get(text_message=text).pk
    with mock.patch("texts.tasks.outbound_send_batch.apply_async"):
        return pk, services.outbound_process_batch(message_ids=[pk], **pipeline.kwargs())


def test_the_stamp_is_committed_before_the_slot_is_reserved_and_the_request_follows_the_slot(
    pipeline: Pipeline, transactional_text: TextMessage, make_contact: Callable[..., Contact]
) -> None:
    steps: list[str] = []
    real_stamp, real_reserve, real_send = dispatch._stamp_ids, pipeline.limiter.reserve, pipeline.provider.send

    def stamp(*args: Any, **kwargs: Any) -> Any:
        stamped = real_stamp(*args, **kwargs)
        steps.append("stamp committed")  # autocommit: the UPDATE above is committed when it returns
        return stamped

    def reserve(**kwargs: Any) -> Any:
        if not kwargs.get("peek"):
            steps.append("slot reserved")
        return real_reserve(**kwargs)

    def send(request: Any) -> Any:
        steps.append("request")
        return real_send(request)

    with (
        mock.patch.object(dispatch, "_stamp_ids", stamp),
        mock.patch.object(pipeline.limiter, "reserve", reserve),
        mock.patch.object(pipeline.provider, "send", send),
    ):
        pk, outcome = _send(pipeline, transactional_text, make_contact())
    assert outcome.sent == [pk]
    assert steps == ["stamp committed", "slot reserved", "request"]


def test_a_stamped_call_whose_slot_was_taken_takes_its_stamp_back_and_goes_once_at_the_next(
    pipeline: Pipeline, transactional_text: TextMessage, make_contact: Callable[..., Contact]
) -> None:
    pipeline.limiter.later_at_the_call = 0.3  # another worker took the planned slot: the next is 0.3 s away
    pk, outcome = _send(pipeline, transactional_text, make_contact())
    assert outcome.sent == [pk]
    assert len(pipeline.provider.requests) == 1
    assert len(pipeline.limiter.asks) == 2  # the refused reservation, then the one that went
    row = OutboundMessage.objects.get(pk=pk)
    assert (row.status, row.attempts) == (Status.SENT, 1)  # the refused attempt does not count


def test_a_stamped_call_whose_limiter_is_unreachable_takes_its_stamp_back_and_is_retried(
    pipeline: Pipeline, transactional_text: TextMessage, make_contact: Callable[..., Contact]
) -> None:
    """Redis gone after the stamp: no slot, no request; the attempt does not count (so an outage cannot use up a
    message's attempts) and the message is retried with backoff, never ``unknown``."""
    real = pipeline.limiter.reserve

    def down(**kwargs: Any) -> Any:
        if kwargs.get("peek"):
            return real(**kwargs)
        raise ConnectionError("Redis is gone")

    with mock.patch.object(pipeline.limiter, "reserve", side_effect=down):
        pk, outcome = _send(pipeline, transactional_text, make_contact())
    assert outcome.retried == [pk]
    assert pipeline.provider.requests == []
    row = OutboundMessage.objects.get(pk=pk)
    assert (row.status, row.error_code, row.attempts, row.provider_called_at) == (
        Status.QUEUED,
        "rate_limiter",
        0,
        None,
    )
