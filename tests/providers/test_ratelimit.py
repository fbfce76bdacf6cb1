"""Per-sender rate limits hold across real processes: on real Redis, and with the single-machine fallback."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest

from providers.ratelimit import RateLimitExceeded, wait_for_slot
from smsapp.testing import procs

CHILD = """
import json, sys, time, django
django.setup()
from providers.ratelimit import wait_for_slot
key, rate, cost = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
count, start_at = int(sys.argv[4]), float(sys.argv[5])
time.sleep(max(0.0, start_at - time.time()))
stamps = []
for _ in range(count):
    wait_for_slot(sender_key=key, rate_per_second=rate, cost=cost)
    stamps.append(time.time())
print(json.dumps(stamps))
"""


def _run_two_processes(*, env: dict[str, str], rate: float, cost: int, count: int) -> list[float]:
    key = f"test:{uuid.uuid4().hex}"
    start_at = time.time() + 4  # both children have set Django up by then, so they really compete
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, key, str(rate), str(cost), str(count), str(start_at)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=procs.BASE_DIR,
        )
        for _ in range(2)
    ]
    stamps: list[float] = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        stamps += json.loads(out)
    return sorted(stamps)


def _assert_rate_held(stamps: list[float], *, rate: float, cost: int) -> None:
    segments_per_second = rate / cost
    # Over the whole run: never above the configured rate (a slot wakes late, never early).
    overall = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert overall <= segments_per_second * 1.02, f"{overall:.2f} messages/s > {segments_per_second}"
    # Over any one-second window: at most rate+1 slots start in it, +1 for a sender woken a little late.
    for i, first in enumerate(stamps):
        in_window = sum(1 for s in stamps[i:] if s < first + 1.0)
        assert in_window <= segments_per_second + 2, f"{in_window} sends within 1s from {first}"
    # The limiter really made them wait (two unthrottled loops would send all at once).
    assert stamps[-1] - stamps[0] >= (len(stamps) - 1) / segments_per_second * 0.95


@pytest.mark.redis
@pytest.mark.slow
def test_rate_is_held_across_two_processes_on_redis() -> None:
    env = procs.child_env()
    stamps = _run_two_processes(env=env, rate=20, cost=1, count=20)
    assert len(stamps) == 40
    _assert_rate_held(stamps, rate=20, cost=1)


@pytest.mark.redis
@pytest.mark.slow
def test_segments_cost_their_share_of_the_rate_on_redis() -> None:
    stamps = _run_two_processes(env=procs.child_env(), rate=20, cost=2, count=10)
    _assert_rate_held(stamps, rate=20, cost=2)


@pytest.mark.slow
def test_rate_is_held_across_two_processes_without_redis(settings: Any) -> None:
    env = procs.child_env(REDIS_URL="")
    stamps = _run_two_processes(env=env, rate=20, cost=1, count=20)
    _assert_rate_held(stamps, rate=20, cost=1)


@pytest.mark.parametrize("redis_url", ["fallback", "redis"])
def test_max_wait_reserves_nothing(settings: Any, redis_url: str) -> None:
    if redis_url == "fallback":
        settings.REDIS_URL = ""
    elif not settings.REDIS_URL:
        pytest.skip("needs Redis (REDIS_URL)")
    key = f"test:{uuid.uuid4().hex}"
    assert wait_for_slot(sender_key=key, rate_per_second=1, cost=1) == 0
    with pytest.raises(RateLimitExceeded) as info:
        wait_for_slot(sender_key=key, rate_per_second=1, cost=1, max_wait=0.1)
    assert 0.5 < info.value.wait <= 1.0
    # Nothing was reserved by the refused call: the next one waits one interval, not two.
    waited = wait_for_slot(sender_key=key, rate_per_second=1, cost=1)
    assert waited <= 1.0


def test_other_senders_are_independent(settings: Any) -> None:
    settings.REDIS_URL = ""
    wait_for_slot(sender_key="test:a", rate_per_second=0.5)
    assert wait_for_slot(sender_key=f"test:{uuid.uuid4().hex}", rate_per_second=0.5) == 0
