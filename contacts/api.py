"""The REST API of contacts, Do Not Contact and segments (``/api/v1/contacts``, ``/api/v1/segments``).

Input is validated by the app's own form and filter validator and written through ``contacts.services``; this module
only translates between JSON and them. Deleting a contact or a segment is admin-only (it destroys history that the
timeline, the outbound log and campaigns point to); everything else is open to marketers, as in the UI.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from django.db import IntegrityError, transaction
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils.html import strip_tags
from ninja import Path, Query, Router, Schema, Status
from pydantic import AfterValidator, Field

from smsapp.core.api import (
    MAX_IDS_PER_REQUEST,
    ContactIds,
    FieldErrors,
    Id,
    InputSchema,
    MembershipChange,
    PageQuery,
    Text,
    cursor_decode,
    keyset_page,
    no_nul_anywhere,
    require_admin,
    responses,
)

from .consent import NEVER, ConsentError, ConsentState, consent_record, consent_state, consent_states
from .filters import CUSTOM_KEY, FilterError, filters_clean
from .forms import ContactForm
from .models import ConsentSource, ConsentStatus, Contact, DoNotContact, Segment
from .phones import InvalidPhoneNumber, phone_to_e164
from .services import (
    OptOutProtected,
    SegmentInUse,
    contact_search,
    contacts_in_segment,
    contacts_with_dnc_flag,
    dnc_active,
    dnc_add,
    dnc_remove,
    segment_add_contacts,
    segment_create,
    segment_remove_contacts,
    timeline_record,
)
from .services import segment_delete as segment_delete_service

router = Router()


# Schemas


def _custom_fields(value: dict[str, str]) -> dict[str, str]:
    for key in value:
        if not CUSTOM_KEY.match(key) or "__" in key:
            raise ValueError(f"“{key}” is not a custom field name (a letter, then letters, digits and _)")
    return value


CustomFields = Annotated[dict[Text, Annotated[Text, Field(max_length=1000)]], AfterValidator(_custom_fields)]


class DncOut(Schema):
    reason: str
    source: str
    comment: str
    since: dt.datetime


class ConsentOut(Schema):
    status: Literal["subscribed", "unsubscribed", "never"]
    at: dt.datetime | None = Field(description="When the contact gave or withdrew it (null: never asked).")
    source: str = Field(description="import, api, web_form, keyword, double_opt_in, marketer or campaign.")


class ContactOut(Schema):
    id: int
    first_name: str
    last_name: str
    email: str
    mobile: str | None = Field(description="E.164, e.g. +447911123456")
    whatsapp: str | None = Field(None, description="The WhatsApp number, E.164 (kept apart from the mobile).")
    messenger_id: str | None = Field(
        None, description="The Messenger ID, learnt from the contact's first Messenger message (read-only)."
    )
    country: str
    timezone: str
    preferred_language: str
    custom_fields: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime
    dnc_sms: bool = Field(description="Whether the contact is Do Not Contact for SMS.")
    dnc: DncOut | None = Field(description="The active SMS Do Not Contact entry, if any.")
    sms_consent: ConsentOut = Field(description="Marketing consent of the contact's number for SMS.")


class ContactPage(Schema):
    items: list[ContactOut]
    next_cursor: str | None


class ContactIn(InputSchema):
    first_name: Text = Field("", max_length=100)
    last_name: Text = Field("", max_length=100)
    email: Text = Field("", max_length=254)
    mobile: Text | None = Field(None, max_length=40, description="Any format; national numbers read in `country`.")
    whatsapp: Text | None = Field(
        None, max_length=40, description='The WhatsApp number in any format, or "mobile" to use the mobile number.'
    )
    country: Text = Field("", max_length=2, description="ISO 3166-1 alpha-2")
    timezone: Text = Field("", max_length=64, description="IANA name, e.g. Europe/London")
    preferred_language: Text = Field("", max_length=16)
    custom_fields: CustomFields = Field(default_factory=dict)
    sms_consent: bool | None = Field(None, description="true: subscribed to SMS marketing; false: unsubscribed.")


class ContactPatch(InputSchema):
    """Only the fields sent change. ``custom_fields``, when sent, is the whole set: a key left out is removed
    (``{}`` removes them all)."""

    first_name: Text | None = Field(None, max_length=100)
    last_name: Text | None = Field(None, max_length=100)
    email: Text | None = Field(None, max_length=254)
    mobile: Text | None = Field(None, max_length=40)
    whatsapp: Text | None = Field(
        None, max_length=40, description='Any format, "mobile" for the mobile number, null or "" to remove it.'
    )
    country: Text | None = Field(None, max_length=2)
    timezone: Text | None = Field(None, max_length=64)
    preferred_language: Text | None = Field(None, max_length=16)
    custom_fields: CustomFields | None = None
    sms_consent: bool | None = Field(None, description="true: subscribed to SMS marketing; false: unsubscribed.")


class ContactQuery(PageQuery):
    mobile: Text | None = Field(None, description="A number in any common format; matched exactly once normalised.")
    country: Text | None = Field(
        None, pattern="^[A-Za-z]{2}$", description="ISO country for a `mobile` written without its country code."
    )
    segment: Id | None = Field(None, description="Only members of this segment.")
    dnc: bool | None = Field(None, description="true: only SMS Do Not Contact; false: only contactable.")
    q: Text | None = Field(None, max_length=200, description="Name, email or number.")


class DncIn(InputSchema):
    reason: Literal["unsubscribed", "bounced", "manual"] = "manual"
    comment: Text = Field("", max_length=500)


class SegmentIn(InputSchema):
    name: Text = Field(min_length=1, max_length=200)
    description: Text = Field("", max_length=2000)
    kind: Literal["static", "filter"] = "static"
    filters: dict[str, Any] | None = Field(
        None,
        description='Filter-based only: {"match": "all"|"any", "rules": [{"field", "operator", "value"}]}.',
    )


class SegmentOut(Schema):
    id: int
    name: str
    description: str
    kind: str
    filters: dict[str, Any]
    member_count: int
    rebuilt_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


class SegmentPage(Schema):
    items: list[SegmentOut]
    next_cursor: str | None


# Contacts


def _with_dnc(queryset: QuerySet[Contact]) -> QuerySet[Contact]:
    """The contacts with their active SMS DNC entry (one extra query per page, not one per contact)."""
    return queryset.prefetch_related(
        Prefetch("dnc_entries", queryset=dnc_active().order_by(), to_attr="active_sms_dnc")
    )


def contact_out(contact: Contact) -> ContactOut:
    entries: list[DoNotContact] | None = getattr(contact, "active_sms_dnc", None)
    if entries is None:  # not prefetched (a single contact): one query
        entries = list(dnc_active().filter(contact=contact))
    entry = entries[0] if entries else None
    states: dict[str, ConsentState] | None = getattr(contact, "sms_consent_states", None)
    if states is None:
        consent = consent_state(address=str(contact.mobile) if contact.mobile else None)
    else:
        consent = states.get(str(contact.mobile), NEVER) if contact.mobile else NEVER
    return ContactOut(
        id=contact.pk,
        first_name=contact.first_name,
        last_name=contact.last_name,
        email=contact.email,
        mobile=str(contact.mobile) if contact.mobile else None,
        whatsapp=str(contact.whatsapp) if contact.whatsapp else None,
        messenger_id=contact.messenger_id,
        country=contact.country,
        timezone=contact.timezone,
        preferred_language=contact.preferred_language,
        custom_fields=contact.custom_fields,
        created_at=contact.created_at,
        updated_at=contact.updated_at,
        dnc_sms=entry is not None,
        dnc=DncOut(reason=entry.reason, source=entry.source, comment=entry.comment, since=entry.created_at)
        if entry
        else None,
        sms_consent=ConsentOut(**consent.as_dict()),
    )


def _consent_save(request: HttpRequest, contact: Contact, subscribed: bool | None) -> None:
    """The API's ``sms_consent``: true subscribes, false unsubscribes, each logged with who sent it."""
    if subscribed is None:
        return
    try:
        consent_record(
            contact=contact,
            status=ConsentStatus.SUBSCRIBED if subscribed else ConsentStatus.UNSUBSCRIBED,
            source=ConsentSource.API,
            recorded_by=f"API: {request.user}",
        )
    except ConsentError as exc:
        raise FieldErrors({"sms_consent": [str(exc)]}) from None


def contact_page(queryset: QuerySet[Contact], page: PageQuery) -> ContactPage:
    rows, next_cursor = keyset_page(_with_dnc(queryset), page)
    states = consent_states(addresses=[c.mobile for c in rows])  # one query for the page
    for contact in rows:
        contact.sms_consent_states = states  # type: ignore[attr-defined]
    return ContactPage(items=[contact_out(c) for c in rows], next_cursor=next_cursor)


def _get_contact(contact_id: int) -> Contact:
    return get_object_or_404(Contact, pk=contact_id)


def _mobile_conflict(form: ContactForm, contact: Contact | None) -> FieldErrors | None:
    """A 409 when the form refused the number because another contact owns it (not for a malformed number)."""
    raw = form.data.get("mobile") or ""
    if "mobile" not in form.errors or not raw:
        return None
    try:
        e164 = phone_to_e164(raw, region=form.cleaned_data.get("country") or None)
    except InvalidPhoneNumber:
        return None
    others = Contact.objects.filter(mobile=e164)
    owner = (others.exclude(pk=contact.pk) if contact else others).first()
    if owner is None:
        return None
    message = f"“{raw}” (read as {e164}) already belongs to contact {owner.pk}."
    return FieldErrors({"mobile": [message]}, status=409, detail="Duplicate mobile number.")


def _form_errors(form: ContactForm) -> dict[str, list[str]]:
    renamed = {"whatsapp_is_mobile": "whatsapp"}  # the API's "mobile" value is the form's box
    return {renamed.get(field, field): [strip_tags(str(e)) for e in errors] for field, errors in form.errors.items()}


def _save_contact(data: dict[str, Any], custom_fields: dict[str, str] | None, contact: Contact | None) -> Contact:
    """Validate through the UI's own form (same rules, same messages) and save; 400 per field, 409 on a duplicate.
    ``custom_fields`` None keeps the contact's custom fields as they are; a dict replaces them."""
    kept = dict(contact.custom_fields) if contact else {}
    whatsapp = str(data.get("whatsapp") or "")
    as_mobile = whatsapp.strip().lower() == "mobile"
    form_data = {**data, "mobile": data.get("mobile") or "", "whatsapp": "" if as_mobile else whatsapp}
    form = ContactForm({**form_data, "whatsapp_is_mobile": "on" if as_mobile else ""}, instance=contact)
    if not form.is_valid():
        raise _mobile_conflict(form, contact) or FieldErrors(_form_errors(form))
    saved = form.save(commit=False)
    saved.custom_fields = kept if custom_fields is None else custom_fields
    try:
        with transaction.atomic():
            saved.save()
    except IntegrityError:
        # Another request took the number between the form's check and this write.
        raise FieldErrors(
            {"mobile": [f"{saved.mobile} already belongs to another contact."]},
            status=409,
            detail="Duplicate mobile number.",
        ) from None
    return saved


@router.get("/contacts", response=responses({200: ContactPage}, 400), tags=["contacts"], summary="List contacts")
def contact_list(request: HttpRequest, query: Query[ContactQuery]) -> ContactPage:
    contacts = Contact.objects.all()
    before = cursor_decode(query.cursor) if query.cursor else None  # bounds the subqueries too (keyset page)
    if query.mobile is not None:
        try:
            contacts = contacts.filter(mobile=phone_to_e164(query.mobile, region=query.country))
        except InvalidPhoneNumber as exc:
            raise FieldErrors({"mobile": [str(exc)]}) from None
    if query.segment is not None:
        if not Segment.objects.filter(pk=query.segment).exists():
            raise FieldErrors({"segment": [f"Segment {query.segment} does not exist."]})
        contacts = contacts_in_segment(queryset=contacts, segment_id=query.segment, id_below=before)
    if query.q:
        contacts = contact_search(queryset=contacts, text=query.q)
    if query.dnc is not None:
        contacts = contacts_with_dnc_flag(contacts, id_below=before).filter(is_dnc=query.dnc)  # type: ignore[misc]
    return contact_page(contacts, query)


@router.post(
    "/contacts", response=responses({201: ContactOut}, 400, 409, 413), tags=["contacts"], summary="Create a contact"
)
def contact_create(request: HttpRequest, payload: ContactIn) -> Status[ContactOut]:
    data = payload.dict()
    custom_fields = data.pop("custom_fields")
    subscribed = data.pop("sms_consent")
    with transaction.atomic():
        contact = _save_contact(data, custom_fields, None)
        timeline_record(contact=contact, kind="contact.created", title=f"Created via the API by {request.user}")
        _consent_save(request, contact, subscribed)
    return Status(201, contact_out(contact))


@router.get(
    "/contacts/{contact_id}", response=responses({200: ContactOut}, 400, 404), tags=["contacts"], summary="A contact"
)
def contact_read(request: HttpRequest, contact_id: Path[Id]) -> ContactOut:
    return contact_out(_get_contact(contact_id))


@router.patch(
    "/contacts/{contact_id}",
    response=responses({200: ContactOut}, 400, 404, 409, 413),
    tags=["contacts"],
    summary="Update a contact (only the fields sent)",
)
def contact_update(request: HttpRequest, contact_id: Path[Id], payload: ContactPatch) -> ContactOut:
    contact = _get_contact(contact_id)
    changes = payload.dict(exclude_unset=True)
    custom_fields = changes.pop("custom_fields", None)
    subscribed = changes.pop("sms_consent", None)
    current = {name: getattr(contact, name) for name in ContactForm.Meta.fields}
    current["mobile"] = str(contact.mobile or "")
    current["whatsapp"] = str(contact.whatsapp or "")
    data = {**current, **{k: ("" if v is None else v) for k, v in changes.items()}}
    with transaction.atomic():
        contact = _save_contact(data, custom_fields, contact)
        if changes or custom_fields is not None:
            fields = sorted({*changes, *(["custom_fields"] if custom_fields is not None else [])})
            timeline_record(
                contact=contact,
                kind="contact.updated",
                title=f"Updated via the API by {request.user}",
                detail={"fields": fields},
            )
        _consent_save(request, contact, subscribed)
    return contact_out(contact)


@router.delete(
    "/contacts/{contact_id}",
    response=responses({204: None}, 400, 403, 404),
    tags=["contacts"],
    summary="Delete a contact (admins only)",
)
def contact_delete(request: HttpRequest, contact_id: Path[Id]) -> Status[None]:
    require_admin(request)
    _get_contact(contact_id).delete()
    return Status(204, None)


@router.post(
    "/contacts/{contact_id}/dnc",
    response=responses({200: ContactOut, 201: ContactOut}, 400, 404, 413),
    tags=["do not contact"],
    summary="Mark a contact Do Not Contact for SMS (201 when new, 200 when already)",
)
def contact_dnc_add(request: HttpRequest, contact_id: Path[Id], payload: DncIn) -> Status[ContactOut]:
    contact = _get_contact(contact_id)
    _, created = dnc_add(
        contact=contact, reason=payload.reason, source=DoNotContact.Source.API, comment=payload.comment
    )
    return Status(201 if created else 200, contact_out(contact))


class DncRemoveQuery(Schema):
    comment: Text = Field("", max_length=500, description="Why it is lifted (kept in the history).")


@router.delete(
    "/contacts/{contact_id}/dnc",
    response=responses({200: ContactOut}, 400, 403, 404),
    tags=["do not contact"],
    summary="Lift a contact's SMS Do Not Contact (history is kept; 403 for the person's own opt-out, STOP)",
)
def contact_dnc_remove(request: HttpRequest, contact_id: Path[Id], query: Query[DncRemoveQuery]) -> ContactOut:
    contact = _get_contact(contact_id)
    try:
        dnc_remove(contact=contact, source=DoNotContact.Source.API, comment=query.comment)
    except OptOutProtected as exc:
        raise FieldErrors(
            {"dnc": [str(exc)]}, status=403, detail="The person's own opt-out cannot be lifted."
        ) from None
    return contact_out(contact)


# Segments


def segment_out(segment: Segment) -> SegmentOut:
    return SegmentOut.model_validate(segment, from_attributes=True)


def _get_segment(segment_id: int) -> Segment:
    return get_object_or_404(Segment, pk=segment_id)


def existing_contact_ids(ids: Iterable[int]) -> list[int]:
    """The ids, each once, or a 400 naming those that are no contact (nothing is changed then)."""
    wanted = sorted(set(ids))
    found = set(Contact.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    missing = [cid for cid in wanted if cid not in found]
    if missing:
        shown = ", ".join(str(cid) for cid in missing[:20]) + (" …" if len(missing) > 20 else "")
        raise FieldErrors({"contact_ids": [f"No contact with id {shown}."]})
    return wanted


@router.get("/segments", response=responses({200: SegmentPage}, 400), tags=["segments"], summary="List segments")
def segment_list(request: HttpRequest, query: Query[PageQuery]) -> SegmentPage:
    rows, next_cursor = keyset_page(Segment.objects.all(), query)
    return SegmentPage(items=[segment_out(s) for s in rows], next_cursor=next_cursor)


@router.post(
    "/segments",
    response=responses({201: SegmentOut}, 400, 413),
    tags=["segments"],
    summary="Create a static or filter-based segment",
)
def segment_create_view(request: HttpRequest, payload: SegmentIn) -> Status[SegmentOut]:
    filters: dict[str, Any] | None = None
    if payload.kind == "filter":
        try:
            filters = filters_clean(no_nul_anywhere(payload.filters or {}))
        except (FilterError, ValueError) as exc:
            raise FieldErrors({"filters": getattr(exc, "errors", [str(exc)])}) from None
    elif payload.filters:
        raise FieldErrors({"filters": ["Only a filter-based segment (kind “filter”) has filters."]})
    segment = segment_create(name=payload.name, description=payload.description, kind=payload.kind, filters=filters)
    return Status(201, segment_out(segment))


@router.get(
    "/segments/{segment_id}", response=responses({200: SegmentOut}, 400, 404), tags=["segments"], summary="A segment"
)
def segment_read(request: HttpRequest, segment_id: Path[Id]) -> SegmentOut:
    return segment_out(_get_segment(segment_id))


@router.delete(
    "/segments/{segment_id}",
    response=responses({204: None}, 400, 403, 404, 409),
    tags=["segments"],
    summary="Delete a segment (admins only; 409 while another segment's filters use it)",
)
def segment_delete(request: HttpRequest, segment_id: Path[Id]) -> Status[None]:
    require_admin(request)
    try:
        segment_delete_service(segment=_get_segment(segment_id))
    except SegmentInUse as exc:
        raise FieldErrors({"segment": [str(exc)]}, status=409, detail="Segment in use.") from None
    return Status(204, None)


@router.get(
    "/segments/{segment_id}/contacts",
    response=responses({200: ContactPage}, 400, 404),
    tags=["segments"],
    summary="The segment's members",
)
def segment_members(request: HttpRequest, segment_id: Path[Id], query: Query[PageQuery]) -> ContactPage:
    segment = _get_segment(segment_id)
    return contact_page(contacts_in_segment(queryset=Contact.objects.all(), segment_id=segment.pk), query)


@router.post(
    "/segments/{segment_id}/contacts",
    response=responses({200: MembershipChange}, 400, 404, 413),
    tags=["segments"],
    summary=f"Add contacts to a segment (at most {MAX_IDS_PER_REQUEST} ids)",
)
def segment_contacts_add(request: HttpRequest, segment_id: Path[Id], payload: ContactIds) -> MembershipChange:
    segment = _get_segment(segment_id)
    changed = segment_add_contacts(segment=segment, contact_ids=existing_contact_ids(payload.contact_ids))
    return MembershipChange(changed=changed, member_count=segment.member_count)


@router.delete(
    "/segments/{segment_id}/contacts",
    response=responses({200: MembershipChange}, 400, 404, 413),
    tags=["segments"],
    summary="Remove contacts from a segment (a filter-based one keeps them out of later rebuilds)",
)
def segment_contacts_remove(request: HttpRequest, segment_id: Path[Id], payload: ContactIds) -> MembershipChange:
    segment = _get_segment(segment_id)
    changed = segment_remove_contacts(segment=segment, contact_ids=existing_contact_ids(payload.contact_ids))
    return MembershipChange(changed=changed, member_count=segment.member_count)
