"""Writes of the outbound log: status transitions, enqueueing recipients, test sends.

``outbound_enqueue`` inserts one ``queued`` row per recipient in one INSERT … SELECT and, after commit, enqueues tasks
carrying batches of ids (``sms_priority`` or ``sms_bulk``); ``texts.services.dispatch`` sends them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from contacts.models import Channel, Contact
from contacts.selectors import address_field, textable_sql
from smsapp.core.celery import task

from ..models import TIMESTAMP_FIELD, OutboundMessage, Source, Status, TextMessage
from ..signals import message_status_changed

logger = logging.getLogger(__name__)

BATCH_SIZE = 200  # ids per task


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


# State changes


def outbound_transition(*, message_ids: Iterable[int], to: str, extra: Q | None = None, **fields: Any) -> list[int]:
    """Move messages to ``to`` where their current status allows it; returns the ids that moved.

    One conditional UPDATE: a message in a status that does not allow the move (a later one, or one another process
    just wrote) is left as it is.
    """
    ids = list(message_ids)
    if not ids:
        return []
    now = timezone.now()
    values = {"status": to, TIMESTAMP_FIELD[to]: now, "updated_at": now, **fields}
    allowed = Q(status__in=OutboundMessage.allowed_from(to)) & (extra if extra is not None else Q())
    with transaction.atomic():
        # Lock first so the ids we report are exactly the rows the UPDATE changes (a concurrent writer waits).
        moved = list(
            OutboundMessage.objects.filter(allowed, pk__in=ids).select_for_update().values_list("pk", flat=True)
        )
        if moved:
            OutboundMessage.objects.filter(allowed, pk__in=moved).update(**values)
    if moved:
        transaction.on_commit(lambda: message_status_changed.send(sender=OutboundMessage, message_ids=moved, status=to))
    return moved


# Enqueue


# Within a queue, a task carrying rows whose moment has come (woken by the pacer at their slot, due again after a
# backoff or quiet hours, swept back) is taken before the tasks carrying new rows: on a slow sender a fan-out's
# batches only claim and park, and a million contacts' thousands of them would hold the paced sends back for as long
# as parking takes. kombu's Redis transport keeps a list per priority and takes them in order, 0 (the default)
# first; the embedded broker ignores priorities (one worker process per queue there).
NEW_ROWS_PRIORITY = 9


def _enqueue_tasks(ids: list[int], *, priority: bool, countdown: float = 0, new_rows: bool = False) -> None:
    outbound_send_batch = task("texts.outbound_send_batch")
    queue = "sms_priority" if priority else "sms_bulk"
    for start in range(0, len(ids), BATCH_SIZE):
        chunk = ids[start : start + BATCH_SIZE]
        outbound_send_batch.apply_async(
            args=(chunk,), queue=queue, countdown=max(0.0, countdown), priority=NEW_ROWS_PRIORITY if new_rows else 0
        )


def enqueue_after_commit(ids: list[int], *, priority: bool, countdown: float = 0, new_rows: bool = False) -> None:
    """Tasks for ``ids`` once the transaction commits; ``new_rows`` for rows just queued (a fan-out's, an enqueue's),
    which go after the tasks of rows whose moment has come."""
    if ids:
        transaction.on_commit(lambda: _enqueue_tasks(ids, priority=priority, countdown=countdown, new_rows=new_rows))


def outbound_enqueue(
    *,
    text_message: TextMessage,
    contacts: QuerySet[Contact] | Iterable[int],
    source: str,
    source_ref: str = "",
    priority: bool = False,
) -> int:
    """Queue ``text_message`` for each contact that can be texted (``contacts.selectors.textable``); returns rows
    created.

    One INSERT … SELECT; a broadcast row that exists already is skipped by the partial unique constraint
    (``ON CONFLICT DO NOTHING``). Tasks carrying batches of ids go to ``sms_priority`` or ``sms_bulk`` after commit.
    """
    if not isinstance(contacts, QuerySet):
        contacts = Contact.objects.filter(pk__in=list(contacts))
    subquery, sub_params = contacts.values("pk").query.sql_with_params()
    now = timezone.now()
    channel = text_message.channel
    sql = queued_insert_sql(
        values={"text": "%s", "source": "%s", "source_ref": "%s", "priority": "%s", "status": "%s", "stamp": "%s"},
        channel=channel,
        rest=f"""
        FROM {Contact._meta.db_table} c
        WHERE c.id IN ({subquery})
          AND {textable_sql(alias="c", channel=channel, marketing=text_message.is_marketing)}
        ORDER BY c.id
        ON CONFLICT DO NOTHING
        RETURNING id""",
    )
    # Raw SQL: adapt the timestamp as the ORM does (SQLite stores naive UTC text and compares it as text).
    stamp = connection.ops.adapt_datetimefield_value(now)
    params = [text_message.pk, source, source_ref, priority, Status.QUEUED, stamp, stamp, stamp, *sub_params]
    if connection.vendor == "sqlite":
        # SQLite's parser needs a WHERE on INSERT … SELECT … ON CONFLICT to tell it from a join's ON.
        sql = sql.replace("ORDER BY c.id", "AND 1 ORDER BY c.id")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = [row[0] for row in cursor.fetchall()]
        enqueue_after_commit(sorted(ids), priority=priority, new_rows=True)
    return len(ids)


# The columns of a queued row that a set-based INSERT … SELECT writes, each with the SQL of its value (``{name}`` is
# a placeholder the caller gives; ``{address}`` and ``{channel}`` are the text message's channel's); the rest take
# their database defaults (schedule, provider…). Written once for enqueue and the broadcast fan-out, which differ only
# in where their contacts come from.
QUEUED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("contact_id", "c.id"),
    ("to_number", "c.{address}"),
    ("channel", "{channel}"),
    ("sender", "''"),
    ("sender_kind", "''"),
    ("text_message_id", "{text}"),
    ("source", "{source}"),
    ("source_ref", "{source_ref}"),
    ("priority", "{priority}"),
    ("body", "''"),
    ("encoding", "''"),
    ("status", "{status}"),
    ("error_code", "''"),
    ("error_message", "''"),
    ("attempts", "0"),
    ("next_attempt_at", "{stamp}"),
    ("price_unit", "''"),
    ("queued_at", "{stamp}"),
    ("updated_at", "{stamp}"),
)


def queued_insert_sql(*, values: dict[str, str], rest: str, channel: str = Channel.SMS) -> str:
    """``INSERT INTO <outbound> (…) SELECT …`` of queued rows for the contacts aliased ``c`` in ``rest`` (its FROM,
    WHERE, ORDER BY, ON CONFLICT and RETURNING). ``values`` gives each placeholder's SQL: ``%s`` in the order text,
    source, source_ref, priority, status, stamp (three times), or named parameters. Each row goes to the contact's
    address on ``channel``."""
    field = Contact._meta.get_field(address_field(channel))  # a KeyError for anything but a known channel
    assert isinstance(field, models.Field)
    # Both are literals from the model, never input: ``channel`` is a key of ADDRESS_FIELD.
    known = {"address": field.column, "channel": f"'{channel}'"}
    columns = ", ".join(name for name, _ in QUEUED_COLUMNS)
    select = ", ".join(expression.format(**values, **known) for _, expression in QUEUED_COLUMNS)
    table = OutboundMessage._meta.db_table
    return f"INSERT INTO {table} ({columns})\n        SELECT {select}{rest}"


def test_send(*, text_message: TextMessage, to_number: str, body: str | None = None) -> OutboundMessage:  # noqa: PT028
    """Send ``text_message`` (or an unsaved ``body``) to any number now, on the priority queue.

    The number must be E.164 already (the form validates it). A contact who owns it personalises the body.
    """
    channel = text_message.channel
    contact = Contact.objects.filter(**{address_field(channel): to_number}).first()
    with transaction.atomic():
        message = OutboundMessage.objects.create(
            contact=contact,
            to_number=to_number,
            channel=channel,
            text_message=text_message if text_message.pk else None,
            source=Source.TEST,
            priority=True,
            body=body if body is not None else "",
            next_attempt_at=timezone.now(),
        )
        enqueue_after_commit([message.pk], priority=True)
    return message
