"""One lock for periodic and cron jobs that must never run twice at once (segment rebuilds, campaign runs, a
broadcast's fan-out), whichever machine or process starts them.

In order of preference:
- PostgreSQL: a session-level advisory lock. The server frees it the moment the holder's connection ends, so a
  killed run never blocks the next one.
- Redis (no PostgreSQL): a lock with a lease of ``ttl`` seconds that the holder renews between batches, so a killed
  run's lock expires within ``ttl``.
- Neither (the embedded single-machine set-up on SQLite): an ``fcntl`` file lock in the shared var folder, which the
  kernel frees with the process.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import re
from collections.abc import Callable, Iterator

from django.conf import settings
from django.db import connection

# The first key of every advisory lock this project takes, so its locks never collide with another application's.
ADVISORY_NAMESPACE = 0x534D5341  # "SMSA"


def advisory_key(name: str) -> int:
    """The second advisory-lock key for ``name`` (a signed 32-bit integer, as PostgreSQL's two-key form wants)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "big", signed=True)


def _noop() -> None:
    return None


@contextlib.contextmanager
def job_lock(name: str, *, ttl: float = 120.0) -> Iterator[Callable[[], None] | None]:
    """Hold the lock called ``name``: yields a ``renew`` callable to call between batches, or None at once when
    another holder has it (never waits)."""
    if connection.vendor == "postgresql":
        key = advisory_key(name)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [ADVISORY_NAMESPACE, key])
            row = cursor.fetchone()
        if not (row and row[0]):
            yield None
            return
        try:
            yield _noop
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [ADVISORY_NAMESPACE, key])
        return
    if settings.REDIS_URL:
        import redis

        lock = redis.Redis.from_url(settings.REDIS_URL).lock(f"smsapp:lock:{name}", timeout=ttl)
        if not lock.acquire(blocking=False):
            yield None
            return

        def renew() -> None:
            lock.reacquire()  # raises LockNotOwnedError if the lease ran out and another run took over: stop this one

        try:
            yield renew
        finally:
            with contextlib.suppress(Exception):
                lock.release()
        return
    folder = settings.VAR_DIR / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{re.sub(r'[^A-Za-z0-9_.-]', '-', name)}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        try:
            yield _noop
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
