"""Per-sender rate limiting shared by every worker process, costed by segments.

GCRA with no burst: each sender has a "theoretical arrival time" (TAT). A caller reserves ``cost`` segments by moving
the TAT forward by ``cost / rate`` seconds and sleeps until its slot, so callers queue fairly without polling and
the sender never exceeds its rate over any window, however many processes share it.

- With ``REDIS_URL``: one Lua script, atomic in Redis, on Redis's own clock (no skew between machines).
- Without it (``make run``'s embedded defaults, one machine): the same arithmetic in a small file per sender under
  ``VAR_DIR/ratelimit``, serialised by ``fcntl.flock``; every process on the machine shares it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import struct
import time
from pathlib import Path
from typing import Any

from django.conf import settings

_LUA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local increment = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local start = math.max(tat, now)
local wait = start - now
if max_wait >= 0 and wait > max_wait then
  return {0, tostring(wait)}
end
local new_tat = start + increment
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
return {1, tostring(wait)}
"""


class RateLimitExceeded(Exception):
    """The slot is further away than ``max_wait``; nothing was reserved."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"The next slot is {wait:.2f}s away.")
        self.wait = wait


_redis: dict[str, Any] = {}


def _script() -> Any:
    key = f"{os.getpid()}:{settings.REDIS_URL}"
    if key not in _redis:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        _redis.clear()
        _redis[key] = client.register_script(_LUA)
    return _redis[key]


def _reserve_redis(sender_key: str, increment: float, max_wait: float | None) -> float:
    ok, wait = _script()(
        keys=[f"smsapp:ratelimit:{sender_key}"], args=[repr(increment), -1 if max_wait is None else max_wait]
    )
    if not int(ok):
        raise RateLimitExceeded(float(wait))
    return float(wait)


def _reserve_file(sender_key: str, increment: float, max_wait: float | None) -> float:
    folder = Path(settings.VAR_DIR) / "ratelimit"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / hashlib.sha256(sender_key.encode()).hexdigest()[:32]
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = os.pread(fd, 8, 0)
        tat = struct.unpack("d", raw)[0] if len(raw) == 8 else 0.0
        now = time.time()
        if tat > now + 86_400:
            tat = 0.0  # the clock went back a long way: start again rather than wait a day
        start = max(tat, now)
        wait = start - now
        if max_wait is not None and wait > max_wait:
            raise RateLimitExceeded(wait)
        os.pwrite(fd, struct.pack("d", start + increment), 0)
        return wait
    finally:
        os.close(fd)  # closing releases the lock


def reserve_slot(*, sender_key: str, rate_per_second: float, cost: int = 1, max_wait: float | None = None) -> float:
    """Reserve ``cost`` segments for the sender and return how long to wait before sending (seconds, >= 0)."""
    if rate_per_second <= 0:
        raise ValueError("rate_per_second must be positive")
    increment = max(1, cost) / rate_per_second
    if settings.REDIS_URL:
        return _reserve_redis(sender_key, increment, max_wait)
    return _reserve_file(sender_key, increment, max_wait)


def wait_for_slot(*, sender_key: str, rate_per_second: float, cost: int = 1, max_wait: float | None = None) -> float:
    """Block until the sender may send ``cost`` segments; return the seconds waited.

    Raises ``RateLimitExceeded`` (having reserved nothing) when the wait would pass ``max_wait``: a caller that
    cannot hold a worker that long re-queues the message instead.
    """
    wait = reserve_slot(sender_key=sender_key, rate_per_second=rate_per_second, cost=cost, max_wait=max_wait)
    if wait > 0:
        time.sleep(wait)
    return wait
