"""Per-sender rate limits shared by every worker process, costed by segments; nobody ever sleeps on them.

Each sender has two clocks, both in seconds since the epoch:

- ``t``, the theoretical arrival time of GCRA (no burst): reserving ``cost`` segments starts at ``max(now, t)`` and
  moves ``t`` on by ``cost / rate``. Every message that reaches the provider reserved its slot here first, so the
  sender never exceeds its rate over any window, however many processes and machines share it.
- ``u``, how far ahead the pacer has handed out the sender's capacity to parked bulk messages (``pace``).

``rate`` is the sender's less an allowance for lateness: a request leaves a little after its slot (the event loop
wakes late while another thread holds the GIL; 39 ms at p99 measured on a busy 2-core VM), and with slots exactly
``1 / rate`` apart a few such delays put 103-107 requests into one second on a 100/s short code. Spaced
``(1 + SMS_SEND_JITTER_SECONDS) / rate`` apart, requests up to that late never put more than ``rate + 1`` into any
second at the provider (tests/providers/test_ratelimit.py checks the worst case).

``reserve`` answers, for each message, the slot it gets (``peek``: would get, reserving nothing). A slot within
``horizon`` is reserved and the caller sends at that moment; a slot further away is not reserved, and the caller
parks the message (bulk) or holds the reservation and comes back at that time (priority: always reserved). So the
limiter decides *when* a message goes and a worker never waits: it sends what may go now and hands the rest back
with its due time. Workers plan a chunk with a peek and reserve each slot when the call may start, so a message that
waited for a free call never goes early or in a burst.

Lanes: a fresh bulk message queues behind capacity the pacer already handed out (``max(now, t, u)``), so new
broadcasts join the end of the line; a paced message (handed out by the pacer) and a priority message take the next
free slot (``max(now, t)``), which puts priority sends ahead of every parked bulk message on the same sender.

- With ``REDIS_URL``: one Lua script, atomic in Redis, on Redis's own clock (no skew between machines).
- Without it (``make run``'s embedded defaults, one machine): the same arithmetic in a small file per sender under
  ``VAR_DIR/ratelimit``, serialised by ``fcntl.flock``; every process on the machine shares it.
"""

from __future__ import annotations

import enum
import fcntl
import hashlib
import math
import os
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings


class Lane(enum.IntEnum):
    BULK = 0  # a fresh bulk message: behind what the pacer handed out
    PACED = 1  # handed out by the pacer: it owns part of that capacity
    PRIORITY = 2  # ahead of every bulk message; reserves even beyond the horizon (``hold``)


@dataclass(frozen=True)
class Ask:
    cost: int  # segments
    lane: Lane = Lane.BULK


@dataclass(frozen=True)
class Slot:
    at: float  # epoch seconds: when the message may go
    reserved: bool  # True: the slot is the message's; False: nothing was reserved (park it)


@dataclass(frozen=True)
class Handout:
    count: int  # messages the pacer may hand out now
    start: float  # epoch seconds of the first one's slot; the k-th is at start + k / rate


class Limiter(Protocol):
    def reserve(
        self, *, sender_key: str, rate_per_second: float, asks: Sequence[Ask], horizon: float, peek: bool = False
    ) -> list[Slot]:
        """The slot of each ask, in order; see the module docstring. ``peek``: the slots they would get, reserving
        nothing (how a worker plans a chunk: it reserves each slot at the moment of the call)."""
        ...

    def pace(self, *, sender_key: str, rate_per_second: float, window: float, limit: int) -> Handout:
        """Hand out the sender's capacity up to ``window`` seconds ahead, at most ``limit`` messages."""
        ...

    def give_back(self, *, sender_key: str, rate_per_second: float, count: int) -> None:
        """Return capacity ``pace`` handed out that found no message to use it."""
        ...


def spaced_rate(rate_per_second: float) -> float:
    """The rate the slots are spaced at: the sender's, less the allowance for requests that leave a little late."""
    if rate_per_second <= 0:
        raise ValueError("rate_per_second must be positive")
    return float(rate_per_second) / (1.0 + max(0.0, float(getattr(settings, "SMS_SEND_JITTER_SECONDS", 0.0))))


def late_wake_allowance() -> float:
    """How late after its slot a call may still leave, in seconds: half the allowance the slots' spacing leaves for
    lateness (``SMS_SEND_JITTER_SECONDS``), the other half for the client's own work and the way to the provider. A
    call woken later takes a new slot rather than crowding the next ones into one second."""
    return max(0.0, float(getattr(settings, "SMS_SEND_JITTER_SECONDS", 0.0))) / 2


def _reserve(
    now: float, t: float, u: float, *, rate: float, asks: Sequence[Ask], horizon: float
) -> tuple[float, list[Slot]]:
    """The arithmetic both stores share (the Lua script below is this, line for line)."""
    slots: list[Slot] = []
    for ask in asks:
        start = max(now, t, u) if ask.lane == Lane.BULK else max(now, t)
        if ask.lane == Lane.PRIORITY or start - now <= horizon:
            t = start + max(1, ask.cost) / rate
            slots.append(Slot(start, True))
        else:
            slots.append(Slot(start, False))
    return t, slots


def _pace(now: float, t: float, u: float, *, rate: float, window: float, limit: int) -> tuple[float, Handout]:
    start = max(now, t, u)
    count = max(0, min(limit, math.floor((now + window - start) * rate + 1e-9)))
    return start + count / rate, Handout(count, start)


def _give_back(now: float, t: float, u: float, *, rate: float, count: int) -> float:
    return max(now, t, u - count / rate)


# KEYS[1]: the sender's hash {t, u}. ARGV: op, rate, then op's arguments. Returns now and the op's answer.
_LUA = """
local parts = redis.call('TIME')
local now = tonumber(parts[1]) + tonumber(parts[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 't', 'u')
local t = tonumber(state[1] or '0') or 0
local u = tonumber(state[2] or '0') or 0
local op, rate = ARGV[1], tonumber(ARGV[2])
local out = {tostring(now)}
if op == 'reserve' or op == 'peek' then
  local horizon = tonumber(ARGV[3])
  local i = 4
  while i < #ARGV do
    local cost, lane = math.max(1, tonumber(ARGV[i])), tonumber(ARGV[i + 1])
    local start = math.max(now, t)
    if lane == 0 then start = math.max(start, u) end
    if lane == 2 or start - now <= horizon then
      t = start + cost / rate
      out[#out + 1] = '1:' .. tostring(start)
    else
      out[#out + 1] = '0:' .. tostring(start)
    end
    i = i + 2
  end
elseif op == 'pace' then
  local window, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
  local start = math.max(now, t, u)
  local count = math.max(0, math.min(limit, math.floor((now + window - start) * rate + 1e-9)))
  u = start + count / rate
  out[#out + 1] = tostring(count)
  out[#out + 1] = tostring(start)
elseif op == 'give_back' then
  u = math.max(now, t, u - tonumber(ARGV[3]) / rate)
end
if op == 'peek' then
  return out
end
redis.call('HSET', KEYS[1], 't', tostring(t), 'u', tostring(u))
redis.call('PEXPIRE', KEYS[1], math.ceil((math.max(t, u) - now) * 1000) + 60000)
return out
"""

_redis: dict[str, Any] = {}


class RedisLimiter:
    """The shared limiter of every machine: state in Redis, arithmetic in one atomic script on Redis's clock."""

    def _script(self) -> Any:
        key = f"{os.getpid()}:{settings.REDIS_URL}"
        if key not in _redis:
            import redis

            _redis.clear()
            _redis[key] = redis.Redis.from_url(settings.REDIS_URL).register_script(_LUA)
        return _redis[key]

    def _call(self, sender_key: str, *args: object) -> list[str]:
        answer = self._script()(
            keys=[f"smsapp:rate:{sender_key}"], args=[repr(a) if isinstance(a, float) else a for a in args]
        )
        return [part.decode() if isinstance(part, bytes) else str(part) for part in answer]

    def reserve(
        self, *, sender_key: str, rate_per_second: float, asks: Sequence[Ask], horizon: float, peek: bool = False
    ) -> list[Slot]:
        rate_per_second = spaced_rate(rate_per_second)
        flat: list[object] = []
        for ask in asks:
            flat += [max(1, ask.cost), int(ask.lane)]
        op = "peek" if peek else "reserve"
        answer = self._call(sender_key, op, float(rate_per_second), float(horizon), *flat)
        slots = []
        for part in answer[1:]:
            ok, _, at = part.partition(":")
            slots.append(Slot(float(at), ok == "1"))
        return slots

    def pace(self, *, sender_key: str, rate_per_second: float, window: float, limit: int) -> Handout:
        rate_per_second = spaced_rate(rate_per_second)
        answer = self._call(sender_key, "pace", float(rate_per_second), float(window), int(limit))
        return Handout(int(float(answer[1])), float(answer[2]))

    def give_back(self, *, sender_key: str, rate_per_second: float, count: int) -> None:
        rate_per_second = spaced_rate(rate_per_second)
        if count > 0:
            self._call(sender_key, "give_back", float(rate_per_second), int(count))


class FileLimiter:
    """One machine without Redis: the same state in a file per sender, under an exclusive ``flock``."""

    _FORMAT = "dd"

    def _open(self, sender_key: str) -> int:
        folder = Path(settings.VAR_DIR) / "ratelimit"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / hashlib.sha256(sender_key.encode()).hexdigest()[:32]
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def _load(self, fd: int) -> tuple[float, float, float]:
        raw = os.pread(fd, struct.calcsize(self._FORMAT), 0)
        t, u = struct.unpack(self._FORMAT, raw) if len(raw) == struct.calcsize(self._FORMAT) else (0.0, 0.0)
        now = time.time()
        if max(t, u) > now + 86_400 * 30:
            t = u = 0.0  # the clock went back a long way: start again rather than wait a month
        return now, t, u

    def _store(self, fd: int, t: float, u: float) -> None:
        os.pwrite(fd, struct.pack(self._FORMAT, t, u), 0)

    def reserve(
        self, *, sender_key: str, rate_per_second: float, asks: Sequence[Ask], horizon: float, peek: bool = False
    ) -> list[Slot]:
        rate_per_second = spaced_rate(rate_per_second)
        fd = self._open(sender_key)
        try:
            now, t, u = self._load(fd)
            reserved_until, slots = _reserve(now, t, u, rate=rate_per_second, asks=asks, horizon=horizon)
            if not peek:
                self._store(fd, reserved_until, u)
            return slots
        finally:
            os.close(fd)  # closing releases the lock

    def pace(self, *, sender_key: str, rate_per_second: float, window: float, limit: int) -> Handout:
        rate_per_second = spaced_rate(rate_per_second)
        fd = self._open(sender_key)
        try:
            now, t, u = self._load(fd)
            u, handout = _pace(now, t, u, rate=rate_per_second, window=window, limit=limit)
            self._store(fd, t, u)
            return handout
        finally:
            os.close(fd)

    def give_back(self, *, sender_key: str, rate_per_second: float, count: int) -> None:
        rate_per_second = spaced_rate(rate_per_second)
        if count <= 0:
            return
        fd = self._open(sender_key)
        try:
            now, t, u = self._load(fd)
            self._store(fd, t, _give_back(now, t, u, rate=rate_per_second, count=count))
        finally:
            os.close(fd)


def get_limiter() -> Limiter:
    """Redis when the deployment has it, else the single-machine file store."""
    return RedisLimiter() if settings.REDIS_URL else FileLimiter()
