"""A bounded wait for what a real worker or server does in its own time (the real-worker tests share it)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(predicate: Callable[[], Any], what: str, *, timeout: float = 40.0) -> Any:
    """``predicate()``'s first truthy answer, polled every 0.1 s; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # bounded
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")
