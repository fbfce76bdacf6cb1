"""smsapp.core.locks.job_lock: one holder at a time across processes, on every backend; a dead holder frees it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest
from django.db import connection

from smsapp.core.locks import job_lock
from smsapp.testing import procs

pytestmark = pytest.mark.django_db(transaction=True)

HOLD_AND_REPORT = textwrap.dedent(
    """
    import django, sys
    django.setup()
    from smsapp.core.locks import job_lock
    with job_lock(sys.argv[1]) as held:
        print("held" if held is not None else "refused", flush=True)
    """
)


def _other_process_tries(name: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", HOLD_AND_REPORT, name],
        env=procs.child_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def test_a_second_process_is_refused_while_the_lock_is_held_and_gets_it_after() -> None:
    with job_lock("test-job") as held:
        assert held is not None
        assert _other_process_tries("test-job") == "refused"
        assert _other_process_tries("another-job") == "held"
    assert _other_process_tries("test-job") == "held"


@pytest.mark.redis
def test_the_redis_lease_is_used_without_postgresql(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connection, "vendor", "sqlite")  # take the Redis branch even on PostgreSQL
    with job_lock("lease-job", ttl=30) as renew:
        assert renew is not None
        renew()
        with job_lock("lease-job") as second:
            assert second is None
    with job_lock("lease-job") as again:
        assert again is not None


HOLD_UNTIL_KILLED = (
    "import django, time\ndjango.setup()\nfrom smsapp.core.locks import job_lock\n"
    "with job_lock('killed-job') as held:\n    print('held', flush=True)\n    time.sleep(600)\n"
)


def test_a_killed_holder_frees_the_lock() -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_UNTIL_KILLED], env=procs.child_env(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with job_lock("killed-job") as held:
            assert held is None
    finally:
        holder.kill()
        holder.wait(timeout=30)
    # The server notices the dead session (and the kernel the dead process) within moments; bounded wait.
    deadline = time.monotonic() + 15
    while True:
        with job_lock("killed-job") as held:
            if held is not None or time.monotonic() > deadline:
                break
        time.sleep(0.1)
    assert held is not None
