"""The conversations inbox: a thread per contact who wrote to us, and replies sent from it through the pipeline.

A reply is a one-off outbound message (source ``conversation``) on the priority lane, from the number the contact
wrote to when it is one of ours. It goes through the same engine as everything else, so Do Not Contact is checked
again when a worker claims it; the inbox also says beforehand why a reply cannot go (``reply_blockers``) and refuses
it with that reason. ``reply_blockers`` asks ``contacts.selectors`` (who can be texted, the one place consent will
join) and says the reason in more detail where it can; the WhatsApp 24-hour window belongs there too when it lands.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import Max, QuerySet
from django.utils import timezone

from contacts.models import Contact, DoNotContact
from contacts.selectors import CHANNEL_LABEL, address_field, contact_unreachable_reason, window_closed_reason
from contacts.services import dnc_active

from ..models import Conversation, InboundMessage, OutboundMessage, Source, Status
from .outbound import enqueue_after_commit

THREAD_LENGTH = 50
_UPSERT = """
    INSERT INTO {table} (contact_id, last_inbound_at, last_message_at, last_body, unread)
    VALUES (%s, {inbound_at}, %s, %s, {unread})
    ON CONFLICT (contact_id) DO UPDATE SET
        last_inbound_at = {inbound_update},
        last_message_at = excluded.last_message_at,
        last_body = excluded.last_body,
        unread = {unread_update}
"""


def _touch(*, contact_id: int, body: str, at: dt.datetime, inbound: bool) -> None:
    """One upsert: the contact's conversation now ends with this message (theirs counts as unread)."""
    table = Conversation._meta.db_table
    sql = _UPSERT.format(
        table=table,
        inbound_at="%s" if inbound else "NULL",
        unread="1" if inbound else "0",
        inbound_update="excluded.last_inbound_at" if inbound else f"{table}.last_inbound_at",
        # The team answering has read the thread.
        unread_update=f"{table}.unread + 1" if inbound else "0",
    )
    stamp = connection.ops.adapt_datetimefield_value(at)
    params = [contact_id, *([stamp] if inbound else []), stamp, (body or "(media)")[:160]]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def conversation_inbound(*, contact_id: int, body: str, at: dt.datetime) -> None:
    """A reply arrived (called in the reply's own transaction by ``inbound_receive``)."""
    _touch(contact_id=contact_id, body=body, at=at, inbound=True)


def conversation_read(*, contact: Contact) -> None:
    Conversation.objects.filter(contact=contact, unread__gt=0).update(unread=0, read_at=timezone.now())


def conversations_unread() -> int:
    """Threads with messages nobody read (the navigation's badge)."""
    return Conversation.objects.filter(unread__gt=0).count()


def conversation_list() -> QuerySet[Conversation]:
    return (
        Conversation.objects.filter(last_inbound_at__isnull=False)
        .select_related("contact")
        .order_by("-last_message_at", "-id")
    )


@dataclass(frozen=True)
class Entry:
    """One message of a thread, either way."""

    direction: str  # "in" or "out"
    at: dt.datetime
    body: str
    status: str = ""  # outbound: queued, sent, delivered, failed...
    detail: str = ""  # outbound: the error in words; inbound: the keyword's action
    source: str = ""
    channel: str = "sms"

    @property
    def channel_label(self) -> str:
        return CHANNEL_LABEL.get(self.channel, self.channel)


def thread(*, contact: Contact, limit: int = THREAD_LENGTH) -> list[Entry]:
    """The last ``limit`` messages with the contact, oldest first: two indexed queries, merged."""
    from ..errors import explain

    outbound = (
        OutboundMessage.objects.filter(contact=contact)
        .select_related("text_message")
        .order_by("-queued_at", "-id")[:limit]
    )
    inbound = InboundMessage.objects.filter(contact=contact).order_by("-received_at", "-id")[:limit]
    entries = [
        Entry(
            "out",
            m.sent_at or m.queued_at,
            m.body or (m.text_message.body if m.text_message else ""),
            status=m.status,
            detail=explain(m.error_code, m.error_message) if m.error_code else "",
            source=m.get_source_display(),
            channel=m.channel,
        )
        for m in outbound
    ]
    entries += [
        Entry("in", m.received_at, m.body or m.button_text, detail=m.action, channel=m.channel) for m in inbound
    ]
    return sorted(entries, key=lambda e: e.at)[-limit:]


def thread_version(*, contact: Contact) -> str:
    """Changes whenever the thread would look different (a new message either way, a status moved)."""
    out = OutboundMessage.objects.filter(contact=contact).aggregate(n=Max("id"), at=Max("updated_at"))
    inbound = InboundMessage.objects.filter(contact=contact).aggregate(n=Max("id"))
    return f"{out['n'] or 0}.{int(out['at'].timestamp() * 1000) if out['at'] else 0}.{inbound['n'] or 0}"


def reply_channel(*, contact: Contact) -> str:
    """The channel a reply goes on: the one the contact last wrote on (SMS when it never wrote)."""
    last = (
        InboundMessage.objects.filter(contact=contact)
        .order_by("-received_at", "-id")
        .values_list("channel", flat=True)
        .first()
    )
    return str(last or "sms")


def reply_blockers(*, contact: Contact) -> list[str]:
    """Why a reply to this contact cannot go, in words the marketer can act on (empty when it can).

    Who can be texted is decided in one place (``contacts.selectors``); this only says it in more detail where it
    can (how a Do Not Contact came, and how it ends). A reason it has no words of its own for is given as it is.
    The reply goes on the channel the contact last wrote on (``reply_channel``)."""
    channel = reply_channel(contact=contact)
    if channel != "sms":
        reason = contact_unreachable_reason(contact=contact, channel=channel) or window_closed_reason(
            contact=contact, channel=channel, template=False
        )
        return [f"This contact {reason}."] if reason else []
    unreachable = contact_unreachable_reason(contact=contact)
    if not unreachable:
        return []
    reasons = []
    if not contact.mobile:
        reasons.append("This contact has no mobile number.")
    entry = dnc_active().filter(contact=contact).first()
    if entry is not None:
        hows: dict[str, str] = {
            DoNotContact.Source.KEYWORD: "they replied with an opt-out keyword",
            DoNotContact.Source.PROVIDER: "the carrier reported that they unsubscribed",
        }
        how = hows.get(str(entry.source), f"by {entry.get_source_display().lower()}")
        reasons.append(
            f"Do Not Contact for SMS since {entry.created_at:%d %b %Y %H:%M} UTC ({how}). They can opt in again by "
            "texting START; only then can a reply go."
        )
    return reasons or [f"This contact {unreachable}."]


class ReplyRefused(Exception):
    def __init__(self, reasons: list[str]) -> None:
        super().__init__(" ".join(reasons))
        self.reasons = reasons


def _their_number(contact: Contact) -> str:
    """The number of ours the contact last wrote to: the reply comes from it when it is in the pool."""
    return (
        InboundMessage.objects.filter(contact=contact)
        .order_by("-received_at", "-id")
        .values_list("to_number", flat=True)
        .first()
        or ""
    )


def conversation_reply(*, contact: Contact, body: str) -> OutboundMessage:
    """Send ``body`` to the contact now, on the priority lane; ``ReplyRefused`` saying why it cannot go."""
    reasons = reply_blockers(contact=contact)
    if reasons:
        raise ReplyRefused(reasons)
    now = timezone.now()
    channel = reply_channel(contact=contact)
    with transaction.atomic():
        message = OutboundMessage.objects.create(
            contact=contact,
            to_number=str(getattr(contact, address_field(channel))),
            channel=channel,
            sender=_their_number(contact)[:64] if channel == "sms" else "",
            source=Source.CONVERSATION,
            priority=True,
            body=body,
            status=Status.QUEUED,
            next_attempt_at=now,
        )
        _touch(contact_id=contact.pk, body=body, at=now, inbound=False)
        enqueue_after_commit([message.pk], priority=True)
    return message
