"""Small pieces of raw SQL the engine's statements share, written once for PostgreSQL and SQLite."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import connection

BATCH = "campaign_batch"


def table(model: Any) -> str:
    return str(connection.ops.quote_name(model._meta.db_table))


def db_time(moment: dt.datetime) -> Any:
    """A timestamp as a raw-SQL parameter, adapted as the ORM does (SQLite compares naive UTC text)."""
    return connection.ops.adapt_datetimefield_value(moment)


def json_param() -> str:
    return "CAST(%s AS jsonb)" if connection.vendor == "postgresql" else "%s"


def skip_locked() -> str:
    """Rows another run has claimed are skipped, not waited for (PostgreSQL; SQLite has one writer at a time)."""
    return " FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""


def batch_table_ready(cursor: Any) -> None:
    """The batch being run: (event, log or none yet, contact, entry, path taken), one row per contact and event.

    A temporary table, so every statement of a batch joins it instead of a list of ids built in Python. Emptied at
    the start of each batch (a test's transaction never commits, so ON COMMIT would not do it).
    """
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {BATCH} (event_id bigint NOT NULL, log_id bigint, "
        "contact_id bigint NOT NULL, entry integer NOT NULL, path varchar(3))"
    )
    cursor.execute(f"DELETE FROM {BATCH}")  # noqa: S608 - a constant name


def batch_analyzed(cursor: Any) -> None:
    """Statistics for the planner: without them it may read all contacts by hash instead of looking a batch up."""
    if connection.vendor == "postgresql":
        cursor.execute(f"ANALYZE {BATCH}")
