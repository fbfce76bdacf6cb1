"""Trigram indexes for the contact search on PostgreSQL, so a search for a rare name does not read every contact.

``contact_search`` filters with Django's ``icontains`` (``UPPER(col::text) LIKE UPPER('%text%')``) and, for part of
a number, ``contains`` on ``mobile``: a GIN ``gin_trgm_ops`` index on exactly those expressions serves both. Built
``CONCURRENTLY`` (the migration is not atomic) so that a large table stays writable. Nothing happens on SQLite. If the
database user may not create the ``pg_trgm`` extension, the migration says so and carries on: search still works,
by reading the table.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError, migrations

logger = logging.getLogger(__name__)

INDEXES = {
    "contact_search_first_name": "(UPPER((first_name)::text)) gin_trgm_ops",
    "contact_search_last_name": "(UPPER((last_name)::text)) gin_trgm_ops",
    "contact_search_email": "(UPPER((email)::text)) gin_trgm_ops",
    "contact_search_mobile": "mobile gin_trgm_ops",
}


def create(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        try:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except DatabaseError as exc:
            logger.warning("pg_trgm is not available (%s): contact search will read the whole table", exc)
            return
        for name, expression in INDEXES.items():
            cursor.execute(
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON contacts_contact USING gin ({expression})"
            )


def drop(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for name in INDEXES:
            cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("contacts", "0002_imports_and_location")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
