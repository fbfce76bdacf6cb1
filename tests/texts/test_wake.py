"""A row handed back with a due time gets a task that never comes before the row is due: the claim takes only rows
whose ``next_attempt_at`` has passed, so a task that came early would find nothing and leave the row (a held
priority reply, say) to the sweeper, minutes later. Found by the campaign builder's browser test: a reply's yes-path
text, held for its long code's next slot 0.64 s away, was woken 0.6 s later and waited five minutes."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pytest

from contacts.models import Contact
from texts import services
from texts.models import OutboundMessage, TextMessage
from texts.services import dispatch

from .conftest import Pipeline, transient


@pytest.mark.parametrize("due_in", [0.01, 0.64, 0.65, 1.0, 7.349])
def test_a_wake_task_never_comes_before_its_rows_are_due(monkeypatch: pytest.MonkeyPatch, due_in: float) -> None:
    queued: list[tuple[list[int], dict[str, Any]]] = []
    monkeypatch.setattr(dispatch, "enqueue_after_commit", lambda ids, **kwargs: queued.append((ids, kwargs)))

    dispatch._wake([7], {7: due_in}, priority={7: True})

    ((ids, kwargs),) = queued
    assert ids == [7]
    assert kwargs["priority"] is True
    assert due_in <= kwargs["countdown"] < due_in + 0.1 + 1e-9  # grouped by tenths, rounded up


def test_rows_due_within_the_same_tenth_share_one_task(monkeypatch: pytest.MonkeyPatch) -> None:
    queued: list[tuple[list[int], dict[str, Any]]] = []
    monkeypatch.setattr(dispatch, "enqueue_after_commit", lambda ids, **kwargs: queued.append((ids, kwargs)))

    dispatch._wake([1, 2, 3], {1: 0.61, 2: 0.69, 3: 0.71}, priority={1: False, 2: False, 3: False})

    assert sorted((ids, round(kw["countdown"], 1)) for ids, kw in queued) == [([1, 2], 0.7), ([3], 0.8)]


@pytest.mark.django_db
@pytest.mark.parametrize("base", [2, 10])  # bench/faults.py's and a deployment's order of delay
def test_a_batchs_retries_share_one_task_per_second_across_its_outcome_writes(
    base: int,
    pipeline: Pipeline,
    transactional_text: TextMessage,
    make_contact: Callable[..., Contact],
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A fifth of the calls refused with 429, as bench/faults.py has fake_twilio do: each outcome write holds the few
    # calls that finished together, and woken one write at a time its one or two retries got tasks of their own,
    # which crowded the bulk queue ahead of whole batches.
    settings.SMS_SEND_CONCURRENCY = 4
    settings.SMS_RETRY_BASE_SECONDS = base  # due base/2 to base seconds later
    contacts = [make_contact() for _ in range(60)]
    for contact in contacts[::5]:
        pipeline.provider.errors[str(contact.mobile)] = [transient()]
    services.outbound_enqueue(text_message=transactional_text, contacts=[c.pk for c in contacts], source="broadcast")
    ids = sorted(OutboundMessage.objects.values_list("pk", flat=True))
    writes: list[int] = []
    real_write = dispatch._write_outcomes

    def counted(finished: list[tuple[OutboundMessage, Any]], outcome: Any, **kwargs: Any) -> None:
        writes.append(len(finished))
        real_write(finished, outcome, **kwargs)

    queued: list[tuple[list[int], dict[str, Any], float]] = []
    monkeypatch.setattr(dispatch, "_write_outcomes", counted)
    monkeypatch.setattr(
        dispatch, "enqueue_after_commit", lambda ids, **kwargs: queued.append((ids, kwargs, time.time()))
    )

    outcome = services.outbound_process_batch(message_ids=ids, **pipeline.kwargs())

    retried = sorted(outcome.retried)
    assert len(retried) == 12
    assert len([n for n in writes if n]) > 3  # the retries came back in several writes
    woken = sorted(pk for ids_, _, _ in queued for pk in ids_)
    assert woken == retried  # every retry woken, once
    due = {
        pk: at.timestamp()
        for pk, at in OutboundMessage.objects.filter(pk__in=retried).values_list("pk", "next_attempt_at")
    }
    seconds = {math.ceil(at) for at in due.values()}
    assert len(queued) <= len(seconds)  # one task per second of due time, not one per write
    for ids_, kwargs, when in queued:
        assert kwargs["priority"] is False
        assert when + kwargs["countdown"] >= max(due[pk] for pk in ids_) - 1e-3  # never before its rows are due


def test_retries_wait_for_company_until_their_second_is_near(monkeypatch: pytest.MonkeyPatch) -> None:
    queued: list[tuple[list[int], dict[str, Any]]] = []
    monkeypatch.setattr(dispatch, "enqueue_after_commit", lambda ids, **kwargs: queued.append((ids, kwargs)))
    now = 1_000_000.25
    monkeypatch.setattr(dispatch.time, "time", lambda: now)
    wakes = dispatch._RetryWakes()
    wakes.add([1, 2, 3], at={1: now + 0.5, 2: now + 0.7, 3: now + 4.0}, priority={1: True, 2: False, 3: False})

    wakes.flush(everything=False)  # 1 and 2 are due in the next second: woken now, each with its own priority
    assert sorted((ids, kw["priority"], kw["countdown"]) for ids, kw in queued) == [
        ([1], True, 0.75),
        ([2], False, 0.75),
    ]
    wakes.add([4], at={4: now + 3.9}, priority={4: False})  # a later write: joins 3, due in the same second
    wakes.flush(everything=False)
    assert len(queued) == 2
    wakes.flush(everything=True)  # the batch ends
    assert queued[2] == ([3, 4], {"priority": False, "countdown": 4.75})
