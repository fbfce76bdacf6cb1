"""The process's provider event loop (providers.aio)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from providers import aio


def test_the_loop_runs_coroutines_and_asks_other_threads_to_let_go_of_the_gil_within_a_millisecond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A call leaves at its slot only if the loop thread gets the GIL when its timer fires; with Python's default
    5 ms a batch thread rendering a chunk held it long enough to bunch requests (providers.ratelimit)."""
    monkeypatch.setattr(aio, "_state", None)  # a loop of this test's own, as a freshly forked worker starts one
    sys.setswitchinterval(0.005)
    try:

        async def answer() -> int:
            await asyncio.sleep(0)
            return 42

        assert aio.run(answer(), timeout=10) == 42
        assert sys.getswitchinterval() <= aio.SWITCH_INTERVAL_SECONDS
    finally:
        sys.setswitchinterval(0.005)
