"""What a provider's callbacks do: store a reply and act on its keyword, or apply a delivery status.

Both are safe against the provider's retries and against concurrent deliveries of the same callback: a reply is
stored once per message id by the unique constraint (the loser of a race sees the IntegrityError and answers as for a
retry), and a status moves a message only forward through a conditional UPDATE.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from contacts.consent import consent_record
from contacts.models import ConsentSource, ConsentStatus, Contact, DoNotContact, TimelineEvent
from contacts.phones import InvalidPhoneNumber, phone_to_e164
from contacts.selectors import CHANNEL_LABEL
from contacts.services import (
    contact_get_or_create_by_address,
    contact_whatsapp_heard,
    dnc_add,
    dnc_remove,
    timeline_record,
)
from providers import registry
from providers.base import DeliveryState, ErrorKind, InboundEvent, StatusEvent

from .bounces import FAILURES, bad_address_failures_record
from .double_opt_in import double_opt_in_confirm, double_opt_in_request
from .keywords import DEFAULT_HELP_TEXT, OPT_OUT_TYPES, keyword_match
from .models import TIMESTAMP_FIELD, InboundMessage, Keyword, KeywordKind, OutboundMessage, Status, TextMessage
from .services.conversations import conversation_inbound
from .signals import inbound_received, message_status_changed

logger = logging.getLogger(__name__)

# Each delivery state -> the outbound log's status. `accepted` means "the provider has it", which is `sent` for the
# log: it can move a message out of `unknown` and never back from `delivered`. `read` is a delivery.
STATUS_OF_STATE: dict[str, str] = {
    DeliveryState.ACCEPTED: Status.SENT,
    DeliveryState.SENT: Status.SENT,
    DeliveryState.DELIVERED: Status.DELIVERED,
    DeliveryState.READ: Status.DELIVERED,
    DeliveryState.UNDELIVERED: Status.UNDELIVERED,
    DeliveryState.FAILED: Status.FAILED,
}
FINAL = (Status.DELIVERED, Status.UNDELIVERED, Status.FAILED)  # shown on the timeline


@dataclass(frozen=True)
class InboundResult:
    inbound: InboundMessage
    created: bool
    reply: str  # the text to answer with (the provider renders it), "" for none


def _contact_for(event: InboundEvent) -> tuple[Contact | None, str]:
    """The contact who owns the sender's address on the event's channel (created if unknown) and the address as
    stored (E.164 for SMS and WhatsApp, the Messenger ID as sent)."""
    try:
        contact, _ = contact_get_or_create_by_address(
            channel=event.channel, address=event.from_number, country=event.from_country, name=event.profile_name
        )
    except InvalidPhoneNumber as exc:
        # A short code or an alphanumeric sender texting us: stored, but it is nobody we can text back.
        logger.info("inbound %s from a number that is not a mobile: %s", event.message_sid, exc)
        return None, event.from_number
    if event.channel == "messenger":
        return contact, event.from_number
    return contact, phone_to_e164(event.from_number, region=event.from_country or None)


def _last_outbound(
    contact: Contact | None, number: str, to_number: str = "", channel: str = "sms"
) -> OutboundMessage | None:
    """The message this reply answers: the latest the contact received on the channel from the number it wrote to
    (campaign or broadcast alike: by when it was sent, not queued), else the latest from any sender (a Messaging
    Service's)."""
    sent = OutboundMessage.objects.filter(to_number=number, channel=channel, sent_at__isnull=False)
    if contact is not None:
        sent = sent.filter(contact=contact)  # the (contact, -queued_at) index
    latest = sent.order_by("-sent_at", "-id")
    return (latest.filter(sender=to_number).first() if to_number else None) or latest.first()


def _action_for(event: InboundEvent, keyword: Keyword | None) -> str:
    if keyword is not None:
        return str(keyword.kind)
    return str(OPT_OUT_TYPES.get(event.opt_out_type, ""))


def _reply_for(action: str, keyword: Keyword | None, *, help_text: str) -> str:
    if keyword is not None and keyword.auto_reply.strip():
        return keyword.auto_reply.strip()
    if action == KeywordKind.HELP:
        return help_text.strip() or DEFAULT_HELP_TEXT
    return ""


def _apply_action(
    action: str, contact: Contact | None, body: str, channel: str = "sms", *, provider_opted_in: bool = False
) -> None:
    """Act on a keyword on the channel it came on: STOP on WhatsApp opts the WhatsApp address out, not the mobile.
    ``provider_opted_in``: the provider says it handled the person's opt-in itself (its own opt-out block lifted)."""
    if contact is None:
        return
    if action == KeywordKind.OPT_OUT:
        dnc_add(
            contact=contact,
            reason=DoNotContact.Reason.UNSUBSCRIBED,
            source=DoNotContact.Source.KEYWORD,
            channel=channel,
            comment=body[:500],
        )
        # An opt-out withdraws marketing consent too, in the consent log (the compliance record) with its words.
        consent_record(
            contact=contact,
            status=ConsentStatus.UNSUBSCRIBED,
            source=ConsentSource.KEYWORD,
            channel=channel,
            recorded_by="inbound keyword",
            comment=body[:500],
        )
    elif action == KeywordKind.OPT_IN:
        # Lifts the person's own opt-out made by keyword here; the one the provider reported (Twilio's 21610: they
        # replied STOP to Twilio) only when the provider says it lifted its own block (``OptOutType=START``), since
        # our custom opt-in words do not reach it. A marketer's entry and a bounce stay. START makes the number
        # textable again but is not consent to marketing: that takes a double opt-in confirmation
        # (``texts.double_opt_in``) or another recorded consent.
        sources: set[str] = {DoNotContact.Source.KEYWORD}
        if provider_opted_in:
            sources.add(DoNotContact.Source.PROVIDER)
        dnc_remove(
            contact=contact,
            source=DoNotContact.Source.KEYWORD,
            channel=channel,
            comment=body[:500],
            only_reasons={DoNotContact.Reason.UNSUBSCRIBED},
            only_sources=sources,
        )
        double_opt_in_confirm(contact=contact, body=body, channel=channel)
    elif action == KeywordKind.JOIN:
        double_opt_in_request(
            contact=contact, source=ConsentSource.KEYWORD, recorded_by=f"keyword {body.strip()[:40]}", channel=channel
        )


def _too_long(values: dict[str, tuple[str, int]]) -> list[str]:
    return [
        f"{name} is {len(value)} characters; at most {limit} are accepted."
        for name, (value, limit) in values.items()
        if len(value) > limit
    ]


def _limit(model: type[Any], field: str) -> int:
    size = model._meta.get_field(field).max_length
    assert size is not None
    return int(size)


def callback_oversized_fields(event: InboundEvent | StatusEvent) -> list[str]:
    """What of a callback does not fit its column, each field named as the provider names it; the view answers 400
    for any (a varchar overflow would be a 500 on PostgreSQL, and cutting the value down would store something the
    provider never sent)."""
    columns: dict[str, tuple[type[Any], str]]
    if isinstance(event, StatusEvent):
        columns = {"message_sid": (OutboundMessage, "provider_sid"), "error_code": (OutboundMessage, "error_code")}
    else:
        columns = {
            name: (InboundMessage, name)
            for name in (
                "message_sid",
                "account_sid",
                "from_number",
                "to_number",
                "from_country",
                "opt_out_type",
                "profile_name",
                "button_text",
                "button_payload",
            )
        }
    names = event.field_names
    return _too_long(
        {
            names.get(attr, attr): (str(getattr(event, attr)), _limit(model, column))
            for attr, (model, column) in columns.items()
        }
    )


def inbound_receive(*, event: InboundEvent, help_text: str = "", can_reply: bool = True) -> InboundResult:
    """Store an inbound message once, link it, act on its keyword, record it on the timeline; the reply to send.

    A retry (same MessageSid) changes nothing and gets the same reply. ``inbound_received`` is sent after commit.
    ``can_reply`` false (outbound-only direction, an alphanumeric sender) still honours the keyword but says nothing.
    """
    # No look-up first: the unique MessageSid decides, so a new reply costs one query less and a retry is caught below.
    contact, number = _contact_for(event)
    # A tap on a quick-reply button is matched by its label, as if typed (a "Stop" button opts out).
    keyword = keyword_match(event.body or event.button_text)
    action = _action_for(event, keyword)
    reply = _reply_for(action, keyword, help_text=help_text)
    if event.opt_out_type:
        # The provider answered STOP/START/HELP itself (its own opt-out handling): a second answer would be noise.
        reply = ""
    raw = dict(event.raw)
    try:
        with transaction.atomic():
            inbound = InboundMessage.objects.create(
                message_sid=event.message_sid,
                account_sid=event.account_sid,
                from_number=number,
                channel=event.channel,
                profile_name=event.profile_name,
                button_text=event.button_text,
                button_payload=event.button_payload,
                to_number=event.to_number,
                body=event.body,
                media_urls=[m.url for m in event.media],
                media_content_types=[m.content_type for m in event.media],
                from_country=event.from_country.upper(),
                opt_out_type=event.opt_out_type,
                raw=raw,
                contact=contact,
                in_reply_to=_last_outbound(contact, number, event.to_number, event.channel),
                keyword=keyword,
                action=action,
                reply=reply,
            )
            _apply_action(
                action,
                contact,
                event.body or event.button_text,
                event.channel,
                provider_opted_in=event.opt_out_type == "START",
            )
            if contact is not None:
                if event.channel == "whatsapp":
                    contact_whatsapp_heard(contact_id=contact.pk, at=inbound.received_at)
                _record_reply(inbound, contact)
                conversation_inbound(contact_id=contact.pk, body=event.body, at=inbound.received_at)
            transaction.on_commit(lambda: _announce(inbound))
    except IntegrityError:
        # The same MessageSid committed by a concurrent delivery of this webhook: that one did the work.
        inbound = InboundMessage.objects.get(message_sid=event.message_sid)
        return InboundResult(inbound, False, inbound.reply if can_reply else "")
    return InboundResult(inbound, True, reply if can_reply else "")


def _record_reply(inbound: InboundMessage, contact: Contact) -> None:
    media = [
        {"url": url, "content_type": ctype}
        for url, ctype in zip(inbound.media_urls, inbound.media_content_types, strict=False)
    ]
    said = inbound.body or inbound.button_text
    what = "Text message" if inbound.channel == "sms" else f"{CHANNEL_LABEL.get(inbound.channel, inbound.channel)}"
    timeline_record(
        contact=contact,
        kind="sms.reply",
        title=f"{what} reply: {said[:80]}" if said else f"{what} reply (media)",
        detail={
            "inbound_id": inbound.pk,
            "channel": inbound.channel,
            "button_text": inbound.button_text,
            "button_payload": inbound.button_payload,
            "body": inbound.body,
            "media": media,
            "keyword": inbound.keyword.word if inbound.keyword else "",
            "action": inbound.action,
            "in_reply_to": inbound.in_reply_to_id,
        },
        occurred_at=inbound.received_at,
    )


def _announce(inbound: InboundMessage) -> None:
    # Robust: the reply is stored and answered whatever a subscriber (a campaign) does with it.
    results = inbound_received.send_robust(
        sender=InboundMessage,
        inbound=inbound,
        contact_id=inbound.contact_id,
        body=inbound.body,
        in_reply_to_id=inbound.in_reply_to_id,
        channel=inbound.channel,
        button_payload=inbound.button_payload,
        button_text=inbound.button_text,
    )
    for receiver, outcome in results:
        if isinstance(outcome, Exception):
            logger.error("inbound_received receiver %r failed for inbound %s", receiver, inbound.pk, exc_info=outcome)


def outbound_status_apply(*, event: StatusEvent, outbound_id: int | None = None) -> bool:
    """Apply a status callback to the message with this SID; returns whether the message moved.

    ``outbound_id`` is the message id the status callback URL carries (``?m=``): a callback that overtakes the
    worker's own write of the SID (or that arrives for a message whose worker died after calling the provider, now
    ``unknown``) attaches the SID to that message first, so no status is lost and an unknown outcome becomes known.
    Unknown SIDs and unknown statuses are logged and ignored (the provider must get a 200 either way, or it retries).
    """
    target = STATUS_OF_STATE.get(event.status)
    if target is None:
        logger.warning("status callback %s with a status not understood: %r", event.message_sid, event.status)
        return False
    found = _move_by_sid(event.message_sid, target, event.error_code)
    if found is None and outbound_id is not None and _attach_sid(outbound_id, event.message_sid):
        found = _move_by_sid(event.message_sid, target, event.error_code)
    if found is None:
        logger.info("status callback for unknown message SID %s (%s)", event.message_sid, event.status)
        return False
    # Not moved: a repeated or late callback (the provider's `sent` after the worker's own), the message is already
    # past it.
    if found.moved:
        message_status_changed.send(sender=OutboundMessage, message_ids=[found.id], status=target)
    if found.contact_id and _opted_out(event):
        dnc_add(
            contact=Contact.objects.get(pk=found.contact_id),
            reason=DoNotContact.Reason.UNSUBSCRIBED,
            source=DoNotContact.Source.PROVIDER,
            comment=registry.describe_error(event.error_code, provider=event.provider)[:500],
        )
    if found.moved and found.contact_id and target in FINAL and not found.recorded:
        _record_status(found, found.contact_id, target, event.error_code)
    if found.moved and target in FAILURES and _bad_address(event):
        row = OutboundMessage.objects.filter(pk=found.id).values_list("channel", "to_number", "provider").first()
        if row is not None:
            channel, address, provider = row
            bad_address_failures_record(failures=[(channel, address, event.error_code, provider or event.provider)])
    return found.moved


def _bad_address(event: StatusEvent) -> bool:
    """The error code says the address cannot receive (counted towards a bounce; the provider decides)."""
    return (
        bool(event.error_code)
        and registry.error_kind(event.error_code, provider=event.provider) == ErrorKind.BAD_ADDRESS
    )


def _opted_out(event: StatusEvent) -> bool:
    """The error code says the recipient unsubscribed (the provider that reported it decides)."""
    return (
        bool(event.error_code) and registry.error_kind(event.error_code, provider=event.provider) == ErrorKind.OPT_OUT
    )


def _attach_sid(outbound_id: int, message_sid: str) -> bool:
    """Record the SID on a message the provider was called for but whose SID is not written yet."""
    return bool(
        OutboundMessage.objects.filter(
            pk=outbound_id,
            provider_sid__isnull=True,
            provider_called_at__isnull=False,
            status__in=[Status.SENDING, Status.UNKNOWN],
        ).update(provider_sid=message_sid)
    )


class _Found(NamedTuple):
    id: int
    contact_id: int | None
    text_message_name: str | None
    moved: bool  # False: the message is already at or past this status
    recorded: bool  # the timeline entry was written by the same statement


def _status_title(status: str) -> tuple[str, str]:
    """The timeline kind and title prefix of a final status (the text message's name follows the prefix)."""
    if status == Status.DELIVERED:
        return "sms.delivered", "Text message delivered: "
    return "sms.failed", f"Text message {status}: "


@functools.cache
def _move_sql(vendor: str, target: str, *, with_error: bool, own_transaction: bool) -> tuple[str, bool]:
    """The statement of ``_move_by_sid`` (built once per case) and whether it writes the timeline entry too."""
    allowed = ", ".join(f"'{s}'" for s in sorted(OutboundMessage.allowed_from(target)))  # names from the model
    table = OutboundMessage._meta.db_table
    texts_table = TextMessage._meta.db_table
    stamp = TIMESTAMP_FIELD[target]
    set_error = ", error_code = %(error_code)s" if with_error else ""
    update = (
        f"UPDATE {table} SET status = %(target)s, {stamp} = %(now)s, updated_at = %(now)s{set_error} "  # noqa: S608
        f"WHERE provider_sid = %(sid)s AND status IN ({allowed}) "
        f"RETURNING id, contact_id, (SELECT name FROM {texts_table} WHERE {texts_table}.id = text_message_id) AS name"
    )
    if vendor != "postgresql":
        return update, False
    record = target in FINAL
    entry = ""
    if record:
        timeline = TimelineEvent._meta.db_table
        entry = (
            f", entry AS (INSERT INTO {timeline} (contact_id, kind, title, detail, occurred_at, created_at) "  # noqa: S608
            "SELECT contact_id, %(kind)s, LEFT(%(prefix)s || COALESCE(name, 'Text message'), 255), "
            "jsonb_build_object('outbound_id', id, 'status', %(target)s::text, 'error_code', %(error_code)s::text), "
            "%(now)s, %(now)s FROM moved WHERE contact_id IS NOT NULL)"
        )
    # When the statement is its own transaction, its commit need not wait for the WAL to reach the disk (README,
    # "Status callbacks and synchronous_commit"): set_config(..., true) lasts until that commit, so no reply, opt-out
    # or later transaction on the connection is affected. Evaluated only for a row that moved: nothing else writes.
    no_wait = ", set_config('synchronous_commit', 'off', true)" if own_transaction else ", NULL"
    # The second branch answers "already past it" (or "no such SID": no row) in the same round trip. It reads the
    # statement's snapshot, which is all it needs: the row's existence and its contact.
    sql = (
        f"WITH moved AS ({update}){entry} "  # noqa: S608 (names from models)
        f"SELECT id, contact_id, name, TRUE{no_wait} FROM moved UNION ALL "
        f"SELECT id, contact_id, NULL, FALSE, NULL FROM {table} WHERE provider_sid = %(sid)s "
        "AND NOT EXISTS (SELECT 1 FROM moved)"
    )
    return sql, record


def _move_by_sid(message_sid: str, target: str, error_code: str) -> _Found | None:
    """One conditional ``UPDATE … WHERE provider_sid = … AND status IN (allowed) RETURNING``: the message, and
    whether it moved; None when no message has this SID. The row lock the UPDATE takes and PostgreSQL's re-check of
    the WHERE clause after waiting make concurrent callbacks serialise: a status never moves backwards, the highest
    wins.

    On PostgreSQL the statement also answers for a message that did not move, and a final status writes its
    timeline entry in it (data-modifying CTEs): every status callback is then one round trip to the database, which
    is most of what a webhook costs.
    """
    postgres = connection.vendor == "postgresql"
    sql, record = _move_sql(
        connection.vendor, target, with_error=bool(error_code), own_transaction=not connection.in_atomic_block
    )
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    params: dict[str, Any] = {"target": target, "now": now, "error_code": error_code[:32], "sid": message_sid}
    if record:
        params["kind"], params["prefix"] = _status_title(target)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if postgres:
        return _Found(int(row[0]), row[1], row[2], moved=row[3], recorded=record and row[3]) if row else None
    if row is not None:
        return _Found(int(row[0]), row[1], row[2], moved=True, recorded=False)
    found = OutboundMessage.objects.filter(provider_sid=message_sid).values_list("pk", "contact_id").first()
    return _Found(found[0], found[1], None, moved=False, recorded=False) if found else None


def _record_status(moved: _Found, contact_id: int, status: str, error_code: str) -> None:
    kind, prefix = _status_title(status)
    title = prefix + (moved.text_message_name or "Text message")
    detail = {"outbound_id": moved.id, "status": status, "error_code": error_code}
    timeline_record(contact=contact_id, kind=kind, title=title, detail=detail)
