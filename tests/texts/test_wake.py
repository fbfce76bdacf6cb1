"""A row handed back with a due time gets a task that never comes before the row is due: the claim takes only rows
whose ``next_attempt_at`` has passed, so a task that came early would find nothing and leave the row (a held
priority reply, say) to the sweeper, minutes later. Found by the campaign builder's browser test: a reply's yes-path
text, held for its long code's next slot 0.64 s away, was woken 0.6 s later and waited five minutes."""

from __future__ import annotations

from typing import Any

import pytest

from texts.services import dispatch


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
