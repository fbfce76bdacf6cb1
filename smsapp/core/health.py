"""Liveness of the parts a request depends on: the database and the Celery broker."""

from __future__ import annotations

import logging

from django.db import connection

from .celery import app

logger = logging.getLogger(__name__)


def check_database() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "down"; the reason goes to the log, not the page
        logger.warning("healthz: database down: %s", type(exc).__name__)
        return False, "down"
    return True, "ok"


def check_broker() -> tuple[bool, str]:
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            conn.default_channel  # noqa: B018 - opening the channel is the check
    except Exception as exc:
        logger.warning("healthz: broker down: %s", type(exc).__name__)
        return False, "down"
    return True, "ok"
