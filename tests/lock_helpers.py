"""Holding a ``smsapp.core.locks.job_lock`` as another process would, for tests of "a second run does nothing"."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import connection, connections

from smsapp.core.locks import ADVISORY_NAMESPACE, advisory_key, job_lock


@contextlib.contextmanager
def lock_held_elsewhere(name: str) -> Iterator[None]:
    """Hold the lock called ``name``: from a second session on PostgreSQL (advisory locks are re-entrant within one
    session); otherwise the same lock taken here (a Redis token or a file lock of its own)."""
    if connection.vendor != "postgresql":
        with job_lock(name) as held:
            assert held is not None
            yield
        return
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [ADVISORY_NAMESPACE, advisory_key(name)])
            row = cursor.fetchone()
            assert row is not None
            assert row[0]
        yield
        # Unlock before closing: the server frees a closed session's locks only once its backend has exited, which
        # can be after the test's next statement (a race seen under load).
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [ADVISORY_NAMESPACE, advisory_key(name)])
    finally:
        other.close()
