"""One asyncio event loop per process, in a daemon thread, for the provider calls a worker keeps in flight.

The sending pipeline is synchronous Django code (the ORM must not run inside an event loop); it hands coroutines to
this loop with ``submit`` and gets ``concurrent.futures.Future`` objects back, so many HTTP requests are in flight
while the calling thread claims, stamps and writes outcomes. The loop lives as long as the process, so the HTTP
client's connection pool survives from one task to the next. A forked child (Celery's prefork pool) starts a loop of
its own on first use: a loop and its thread do not survive a fork.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

SWITCH_INTERVAL_SECONDS = 0.001
_lock = threading.Lock()
_state: tuple[int, asyncio.AbstractEventLoop] | None = None


def event_loop() -> asyncio.AbstractEventLoop:
    """This process's loop, started on first use."""
    global _state
    with _lock:
        if _state is None or _state[0] != os.getpid():
            # The loop's calls leave at their slots only if the loop gets the GIL when its timer fires: a thread
            # holding it (the batch's claims and rendering) is asked to let go after 1 ms instead of Python's 5.
            # Measured during bench/dispatch.py: slot to request p99 48 -> 25 ms, the same throughput.
            sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_SECONDS))
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="smsapp-provider-loop", daemon=True)
            thread.start()
            _state = (os.getpid(), loop)
        return _state[1]


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Run ``coro`` on this process's loop; the result (or exception) arrives on the returned future."""
    return asyncio.run_coroutine_threadsafe(coro, event_loop())


def run(coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
    """Run ``coro`` on this process's loop and wait for it."""
    return submit(coro).result(timeout=timeout)
