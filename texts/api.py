"""The REST API of text messages, sending to a contact, and the outbound message log.

Text messages are validated by ``TextMessageForm`` (personalisation tokens, 1,600 characters, media URLs), so the API
and the editor refuse the same input with the same messages. A send goes through ``outbound_enqueue`` on the
``sms_priority`` queue, like Mautic's ``/api/smses/{id}/contact/{contactId}/send``.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any, Literal

from django.db import transaction
from django.db.models import F, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, NullIf
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Path, Query, Router, Schema, Status
from pydantic import Field

from contacts.models import Contact, Segment
from contacts.selectors import CHANNEL_LABEL, contact_unreachable_reason, window_closed_reason
from providers.segments import MAX_BODY_CHARACTERS
from smsapp.core.api import FieldErrors, Id, InputSchema, PageQuery, Text, When, keyset_page, responses

from .forms import TextMessageForm
from .models import InboundMessage, OutboundMessage, ShortLink, Source, TextMessage
from .models import Status as OutboundStatus
from .services import outbound_enqueue

router = Router()

Category = Literal["marketing", "transactional"]
ChannelName = Literal["sms", "whatsapp", "messenger"]
OutboundStatusName = Literal["queued", "sending", "sent", "delivered", "undelivered", "failed", "unknown"]


CONTENT_SID_HELP = "A message template of the provider (synced), sent instead of a body; null: the body."
CONTENT_VARIABLES_HELP = (
    'Each variable of the template mapped to text or tokens, e.g. {"1": "{{first_name|there}}"}: strings, every '
    "variable mapped, at most 1,024 characters each."
)


class TextMessageIn(InputSchema):
    name: Text = Field(min_length=1, max_length=200, description="Internal name")
    channel: ChannelName = Field(
        "sms", description="sms, whatsapp or messenger: which of the contact's addresses it goes to."
    )
    body: Text = Field(
        "",
        max_length=10_000,
        description=f"At most {MAX_BODY_CHARACTERS} characters; tokens like {{{{first_name}}}} must exist. "
        "Empty when content_sid names a template.",
    )
    content_sid: Text | None = Field(None, max_length=34, description=CONTENT_SID_HELP)
    content_variables: dict[str, Any] | None = Field(None, description=CONTENT_VARIABLES_HELP)
    language: Text = Field("en", max_length=16)
    category: Category = "marketing"
    is_published: bool = True
    publish_up: When | None = None
    publish_down: When | None = None
    media_urls: list[Text] = Field(default_factory=list, max_length=10)
    segment_ids: list[Id] = Field(
        default_factory=list, max_length=1000, description="With segments this is a segment (broadcast) message."
    )
    track_links: bool | None = Field(
        None, description="Links become tracked short links; null: as the category says (marketing yes)."
    )
    send_to_new_members: bool = Field(
        True, description="A published broadcast texts new segment members at every scheduled run."
    )


class TextMessagePatch(InputSchema):
    """Only the fields sent change."""

    name: Text | None = Field(None, min_length=1, max_length=200)
    channel: ChannelName | None = None
    body: Text | None = Field(None, max_length=10_000)
    content_sid: Text | None = Field(None, max_length=34, description=CONTENT_SID_HELP + " Empty string: none.")
    content_variables: dict[str, Any] | None = Field(None, description=CONTENT_VARIABLES_HELP)
    language: Text | None = Field(None, max_length=16)
    category: Category | None = None
    is_published: bool | None = None
    publish_up: When | None = None
    publish_down: When | None = None
    media_urls: list[Text] | None = Field(None, max_length=10)
    segment_ids: list[Id] | None = Field(None, max_length=1000)
    track_links: bool | None = None
    send_to_new_members: bool | None = None


class TextMessageOut(Schema):
    id: int
    name: str
    channel: str
    body: str
    content_sid: str | None
    content_variables: dict[str, str]
    language: str
    category: str
    is_published: bool
    publish_up: dt.datetime | None
    publish_down: dt.datetime | None
    media_urls: list[str]
    segment_ids: list[int]
    track_links: bool | None
    send_to_new_members: bool
    created_at: dt.datetime
    updated_at: dt.datetime


class TextMessagePage(Schema):
    items: list[TextMessageOut]
    next_cursor: str | None


class TextMessageQuery(PageQuery):
    q: Text | None = Field(None, max_length=200, description="Part of the internal name.")


class SendIn(InputSchema):
    contact_id: Id


class OutboundOut(Schema):
    id: int
    contact_id: int | None
    text_message_id: int | None
    channel: str = Field("sms", description="sms, whatsapp or messenger")
    to_number: str = Field(description="The address on the channel: E.164, or a Messenger ID.")
    sender: str
    source: str
    status: str
    body: str = Field(
        description="As rendered for the contact (empty until a worker claims the message; for a template, its text)."
    )
    content_sid: str | None = Field(
        None, description="The provider's message template it was sent as (a WhatsApp one outside the 24-hour window)."
    )
    segments: int | None
    encoding: str
    provider_sid: str | None
    error_code: str
    error_message: str
    attempts: int
    queued_at: dt.datetime
    sent_at: dt.datetime | None
    delivered_at: dt.datetime | None
    failed_at: dt.datetime | None
    status_checked_at: dt.datetime | None = Field(
        description="When reconciliation last asked the provider for a status whose callback never came."
    )
    price: Decimal | None = Field(None, description="What the provider charged (as it says it: negative for a charge).")
    price_unit: str = ""
    clicks: int = Field(0, description="Clicks on this message's tracked links (previews not counted).")
    updated_at: dt.datetime


class OutboundPage(Schema):
    items: list[OutboundOut]
    next_cursor: str | None


class OutboundQuery(PageQuery):
    contact: Id | None = None
    text_message: Id | None = None
    status: OutboundStatusName | None = None
    since: When | None = Field(None, description="Queued at or after (ISO 8601).")
    until: When | None = Field(None, description="Queued before (ISO 8601).")


# Text messages


def _segments_prefetch() -> Prefetch[Any]:
    return Prefetch("segments", queryset=Segment.objects.only("pk").order_by("pk"))


def text_out(text: TextMessage) -> TextMessageOut:
    return TextMessageOut(
        id=text.pk,
        name=text.name,
        channel=text.channel,
        body=text.body,
        content_sid=text.content_sid or None,
        content_variables=dict(text.content_variables or {}),
        language=text.language,
        category=text.category,
        is_published=text.is_published,
        publish_up=text.publish_up,
        publish_down=text.publish_down,
        media_urls=list(text.media_urls or []),
        segment_ids=[segment.pk for segment in text.segments.all()],
        track_links=text.track_links,
        send_to_new_members=text.send_to_new_members,
        created_at=text.created_at,
        updated_at=text.updated_at,
    )


def _get_text(text_id: int) -> TextMessage:
    return get_object_or_404(TextMessage.objects.prefetch_related(_segments_prefetch()), pk=text_id)


def _save_text(data: dict[str, Any], *, request: HttpRequest, text: TextMessage | None) -> TextMessage:
    """Validate through the editor's form (same rules and messages) and save; a 400 names each bad field."""
    segment_ids = data.pop("segment_ids")
    media_urls = data.pop("media_urls")
    variables = data.pop("content_variables", None)
    form_data = {k: v for k, v in data.items() if v is not None}
    form_data["content_variables"] = json.dumps(variables if variables is not None else {})
    form_data["is_published"] = "on" if data["is_published"] else ""
    form_data["segments"] = [str(pk) for pk in segment_ids]
    form_data["media_urls_text"] = "\n".join(media_urls)
    track = data.get("track_links")
    form_data["track_links"] = "unknown" if track is None else ("true" if track else "false")
    form_data["send_to_new_members"] = "on" if data.get("send_to_new_members", True) else ""
    form = TextMessageForm(form_data, instance=text)
    if not form.is_valid():
        errors = {field: [str(e) for e in errs] for field, errs in form.errors.items()}
        renamed = {"segments": "segment_ids", "media_urls_text": "media_urls"}
        raise FieldErrors({renamed.get(field, field): messages for field, messages in errors.items()})
    if text is None:
        form.instance.created_by = request.user if request.user.is_authenticated else None
    return form.save()


def _current(text: TextMessage) -> dict[str, Any]:
    return {
        "name": text.name,
        "channel": text.channel,
        "body": text.body,
        "content_sid": text.content_sid,
        "content_variables": dict(text.content_variables or {}),
        "language": text.language,
        "category": text.category,
        "is_published": text.is_published,
        "publish_up": text.publish_up,
        "publish_down": text.publish_down,
        "media_urls": list(text.media_urls or []),
        "segment_ids": [segment.pk for segment in text.segments.all()],
        "track_links": text.track_links,
        "send_to_new_members": text.send_to_new_members,
    }


@router.get("/text-messages", response=responses({200: TextMessagePage}, 400), tags=["text messages"], summary="List")
def text_message_list(request: HttpRequest, query: Query[TextMessageQuery]) -> TextMessagePage:
    texts = TextMessage.objects.prefetch_related(_segments_prefetch())
    if query.q:
        texts = texts.filter(name__icontains=query.q)
    rows, next_cursor = keyset_page(texts, query)
    return TextMessagePage(items=[text_out(t) for t in rows], next_cursor=next_cursor)


@router.post(
    "/text-messages",
    response=responses({201: TextMessageOut}, 400, 413),
    tags=["text messages"],
    summary="Create a text message",
)
def text_message_create(request: HttpRequest, payload: TextMessageIn) -> Status[TextMessageOut]:
    text = _save_text(payload.dict(), request=request, text=None)
    return Status(201, text_out(_get_text(text.pk)))


@router.get(
    "/text-messages/{text_message_id}",
    response=responses({200: TextMessageOut}, 400, 404),
    tags=["text messages"],
    summary="A text message",
)
def text_message_read(request: HttpRequest, text_message_id: Path[Id]) -> TextMessageOut:
    return text_out(_get_text(text_message_id))


@router.patch(
    "/text-messages/{text_message_id}",
    response=responses({200: TextMessageOut}, 400, 404, 413),
    tags=["text messages"],
    summary="Update a text message (only the fields sent)",
)
def text_message_update(request: HttpRequest, text_message_id: Path[Id], payload: TextMessagePatch) -> TextMessageOut:
    text = _get_text(text_message_id)
    data = {**_current(text), **payload.dict(exclude_unset=True)}
    keep = (
        "name",
        "channel",
        "body",
        "language",
        "category",
        "is_published",
        "media_urls",
        "segment_ids",
        "send_to_new_members",
    )
    for key in keep:
        # null for a field that cannot be empty means "leave it as it is".
        if data[key] is None:
            data[key] = _current(text)[key]
    _save_text(data, request=request, text=text)
    return text_out(_get_text(text.pk))


def _refusal(message: str) -> FieldErrors:
    return FieldErrors({"contact_id": [message]}, status=409, detail="This contact cannot be sent to.")


@router.post(
    "/text-messages/{text_message_id}/send",
    response=responses({202: OutboundOut}, 400, 404, 409, 413),
    tags=["text messages"],
    summary="Send the text message to one contact now (queued on the priority queue)",
)
def text_message_send(request: HttpRequest, text_message_id: Path[Id], payload: SendIn) -> Status[OutboundOut]:
    text = _get_text(text_message_id)
    contact = Contact.objects.filter(pk=payload.contact_id).first()
    if contact is None:
        raise FieldErrors({"contact_id": [f"No contact with id {payload.contact_id}."]})
    unreachable = contact_unreachable_reason(
        contact=contact, channel=text.channel, marketing=text.is_marketing
    ) or window_closed_reason(contact=contact, channel=text.channel, template=text.uses_template)
    if unreachable:
        raise _refusal(f"Contact {contact.pk} {unreachable}.")
    if not text.is_published:
        raise FieldErrors(
            {"text_message_id": [f"Text message {text.pk} is not published."]},
            status=409,
            detail="This text message cannot be sent.",
        )
    with transaction.atomic():
        created = outbound_enqueue(
            text_message=text,
            contacts=[contact.pk],
            source=Source.API,
            # Which token asked for it: the log answers "who sent this?" without storing the secret.
            source_ref=f"api-token:{getattr(request, 'auth', None) and request.auth.pk}",  # type: ignore[attr-defined]
            priority=True,
        )
        if not created:
            # The contact opted out or lost the number between the checks and the insert.
            label = CHANNEL_LABEL.get(text.channel, text.channel)
            raise _refusal(f"Contact {contact.pk} cannot receive {label} now (Do Not Contact or no address).")
        message = _for_the_log(
            OutboundMessage.objects.filter(contact=contact, text_message=text, source=Source.API)
        ).latest("pk")
    return Status(202, OutboundOut.model_validate(message, from_attributes=True))


# Outbound log


@router.get(
    "/outbound-messages",
    response=responses({200: OutboundPage}, 400),
    tags=["outbound messages"],
    summary="The outbound message log, newest first",
)
def outbound_list(request: HttpRequest, query: Query[OutboundQuery]) -> OutboundPage:
    condition = Q()
    if query.contact is not None:
        condition &= Q(contact_id=query.contact)
    if query.text_message is not None:
        condition &= Q(text_message_id=query.text_message)
    if query.status is not None:
        condition &= Q(status=OutboundStatus(query.status))
    if query.since is not None:
        condition &= Q(queued_at__gte=query.since)
    if query.until is not None:
        condition &= Q(queued_at__lt=query.until)
    rows, next_cursor = keyset_page(_for_the_log(OutboundMessage.objects.filter(condition)), query)
    return OutboundPage(
        items=[OutboundOut.model_validate(row, from_attributes=True) for row in rows], next_cursor=next_cursor
    )


@router.get(
    "/outbound-messages/{message_id}",
    response=responses({200: OutboundOut}, 400, 404),
    tags=["outbound messages"],
    summary="One outbound message",
)
def outbound_read(request: HttpRequest, message_id: Path[Id]) -> OutboundOut:
    message = get_object_or_404(_for_the_log(OutboundMessage.objects.all()), pk=message_id)
    return OutboundOut.model_validate(message, from_attributes=True)


def _for_the_log(rows: QuerySet[OutboundMessage]) -> QuerySet[OutboundMessage]:
    """Each row's clicks in one correlated subquery (no GROUP BY over the page), and the template its text message
    sends it as (the row keeps the template's text as its body)."""
    total = ShortLink.objects.filter(outbound_id=OuterRef("pk")).values("outbound_id").annotate(n=Sum("clicks"))
    return rows.annotate(
        clicks=Coalesce(Subquery(total.values("n")), 0),
        content_sid=NullIf(F("text_message__content_sid"), Value("")),
    )


# Inbound messages


class InboundOut(Schema):
    id: int
    contact_id: int | None
    channel: str = Field("sms", description="sms, whatsapp or messenger")
    from_number: str = Field(description="The sender's address on the channel: E.164, or a Messenger ID.")
    to_number: str
    body: str
    profile_name: str = Field("", description="The name the chat app shows (WhatsApp, Messenger).")
    button_text: str = Field("", description="A quick-reply button's label, when the message is a tap on one.")
    button_payload: str = ""
    media_urls: list[str]
    action: str = Field(description="What the reply did: opt_out, opt_in, help, custom, or empty.")
    in_reply_to_id: int | None = Field(description="The outbound message it answers, when known.")
    message_sid: str
    received_at: dt.datetime


class InboundPage(Schema):
    items: list[InboundOut]
    next_cursor: str | None


class InboundQuery(PageQuery):
    contact: Id | None = None
    since: When | None = Field(None, description="Received at or after (ISO 8601).")
    until: When | None = Field(None, description="Received before (ISO 8601).")


@router.get(
    "/inbound-messages",
    response=responses({200: InboundPage}, 400),
    tags=["inbound messages"],
    summary="Messages contacts sent us, newest first",
)
def inbound_list(request: HttpRequest, query: Query[InboundQuery]) -> InboundPage:
    condition = Q()
    if query.contact is not None:
        condition &= Q(contact_id=query.contact)
    if query.since is not None:
        condition &= Q(received_at__gte=query.since)
    if query.until is not None:
        condition &= Q(received_at__lt=query.until)
    rows, next_cursor = keyset_page(InboundMessage.objects.filter(condition), query)
    return InboundPage(
        items=[InboundOut.model_validate(row, from_attributes=True) for row in rows], next_cursor=next_cursor
    )


@router.get(
    "/inbound-messages/{message_id}",
    response=responses({200: InboundOut}, 400, 404),
    tags=["inbound messages"],
    summary="One inbound message",
)
def inbound_read(request: HttpRequest, message_id: Path[Id]) -> InboundOut:
    return InboundOut.model_validate(get_object_or_404(InboundMessage, pk=message_id), from_attributes=True)
