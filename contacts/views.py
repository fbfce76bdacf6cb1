"""Views of the contacts app: contacts, Do Not Contact, segments, CSV imports. Forms validate, services write."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from smsapp.core.roles import admin_required

from .consent import consent_log, consent_state
from .filters import FIELDS, OPERATOR_LABELS, FilterError, field_spec
from .forms import (
    PAGE_SIZE,
    BulkActionForm,
    ContactForm,
    ContactSearchForm,
    DncAddForm,
    DncRemoveForm,
    ImportMappingForm,
    ImportUploadForm,
    RuleRowForm,
    SegmentForm,
    SegmentRulesForm,
    UploadLimitHandler,
    rule_field_choices,
)
from .importer import MappingError, contact_import_create, contact_import_queue
from .models import ConsentEvent, Contact, ContactImport, DoNotContact, Segment
from .services import (
    OptOutProtected,
    SegmentInUse,
    contact_opt_out_protected,
    contact_search,
    contacts_in_segment,
    contacts_with_dnc_flag,
    dnc_add,
    dnc_add_many,
    dnc_remove,
    segment_add_contacts,
    segment_count_matching,
    segment_delete,
    segment_rebuild,
    segment_remove_contacts,
    segment_save,
    timeline_record,
)
from .tasks import import_contacts

# Contacts


def _is_htmx(request: HttpRequest) -> bool:
    """An htmx request wants the partial, not the whole page (django-htmx's ``request.htmx``, typed)."""
    return request.headers.get("HX-Request") == "true"


def _search(queryset: QuerySet[Contact], text: str) -> QuerySet[Contact]:
    return contact_search(queryset=queryset, text=text)


@require_GET
def contact_list(request: HttpRequest) -> HttpResponse:
    form = ContactSearchForm(request.GET or None)
    data = form.cleaned_data if form.is_valid() else {}
    contacts = _search(Contact.objects.all(), data.get("q") or "")
    # The page's id bound, repeated inside the segment and DNC subqueries (see contacts_in_segment).
    id_below, id_above = data.get("after") or None, data.get("before") or None
    if data.get("segment"):
        contacts = contacts_in_segment(
            queryset=contacts, segment_id=data["segment"].pk, id_below=id_below, id_above=id_above
        )
    contacts = contacts_with_dnc_flag(contacts, id_below=id_below, id_above=id_above)
    if data.get("dnc"):
        contacts = contacts.filter(is_dnc=data["dnc"] == "yes")  # type: ignore[misc]
    # Keyset pagination on the primary key: no OFFSET and no COUNT(*), so page 1 and page 20,000 cost the same.
    if data.get("before"):
        rows = list(contacts.filter(pk__gt=data["before"]).order_by("pk")[: PAGE_SIZE + 1])
        has_newer = len(rows) > PAGE_SIZE
        rows = list(reversed(rows[:PAGE_SIZE]))
        has_older = True
    else:
        if data.get("after"):
            contacts = contacts.filter(pk__lt=data["after"])
        rows = list(contacts.order_by("-pk")[: PAGE_SIZE + 1])
        has_older = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        has_newer = bool(data.get("after"))
    params = request.GET.copy()
    for key in ("after", "before"):
        params.pop(key, None)
    base = params.urlencode()
    context = {
        "form": form,
        "contacts": rows,
        "older_url": f"?{base}&after={rows[-1].pk}" if has_older and rows else "",
        "newer_url": f"?{base}&before={rows[0].pk}" if has_newer and rows else "",
        "bulk_form": BulkActionForm(),
        "segments": Segment.objects.all(),
    }
    template = "contacts/_contact_results.html" if _is_htmx(request) else "contacts/contact_list.html"
    return render(request, template, context)


@require_POST
def contact_bulk(request: HttpRequest) -> HttpResponse:
    form = BulkActionForm(request.POST)
    back = request.POST.get("next") or reverse("contacts:contact_list")
    if not back.startswith("/"):
        back = reverse("contacts:contact_list")
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))
        return redirect(back)
    ids = [c.pk for c in form.cleaned_data["ids"]]
    segment = form.cleaned_data["segment"]
    action = form.cleaned_data["action"]
    if action == "add_segment":
        done = segment_add_contacts(segment=segment, contact_ids=ids)
        messages.success(request, f"{done:,} contact{pluralize(done)} added to {segment}.")
    elif action == "remove_segment":
        done = segment_remove_contacts(segment=segment, contact_ids=ids)
        messages.success(request, f"{done:,} contact{pluralize(done)} removed from {segment}.")
    else:
        marked = dnc_add_many(
            contact_ids=ids,
            reason=DoNotContact.Reason.MANUAL,
            source=DoNotContact.Source.MARKETER,
            comment=f"Bulk action by {request.user.get_username()}",
        )
        messages.success(request, f"{len(marked):,} contact{pluralize(len(marked))} marked Do Not Contact for SMS.")
    return redirect(back)


@require_http_methods(["GET", "POST"])
def contact_create(request: HttpRequest) -> HttpResponse:
    form = ContactForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        contact = form.save()
        timeline_record(contact=contact, kind="contact.created", title=f"Created by {request.user.get_username()}")
        messages.success(request, f"Contact {contact} created.")
        return redirect("contacts:contact_detail", contact_id=contact.pk)
    return render(request, "contacts/contact_form.html", {"form": form, "contact": None})


@require_http_methods(["GET", "POST"])
def contact_update(request: HttpRequest, contact_id: int) -> HttpResponse:
    contact = get_object_or_404(Contact, pk=contact_id)
    form = ContactForm(request.POST or None, instance=contact)
    if request.method == "POST" and form.is_valid():
        form.save()
        if form.changed_data:
            timeline_record(
                contact=contact,
                kind="contact.updated",
                title=f"Updated by {request.user.get_username()}",
                detail={"fields": form.changed_data},
            )
        messages.success(request, "Contact saved.")
        return redirect("contacts:contact_detail", contact_id=contact.pk)
    return render(request, "contacts/contact_form.html", {"form": form, "contact": contact})


@require_GET
def contact_detail(request: HttpRequest, contact_id: int) -> HttpResponse:
    return _detail_response(request, get_object_or_404(Contact, pk=contact_id))


def _detail_response(request: HttpRequest, contact: Contact, *, status: int = 200) -> HttpResponse:
    timeline = Paginator(contact.timeline.all(), 25).get_page(request.GET.get("page"))
    memberships = contact.memberships.filter(manually_removed=False).select_related("segment")
    dnc_history = contact.dnc_entries.order_by("-created_at", "-id")
    active = next((entry for entry in dnc_history if entry.is_active and entry.channel == "sms"), None)
    context = {
        "contact": contact,
        "timeline": timeline,
        "memberships": memberships,
        "dnc_history": dnc_history,
        "dnc": active,
        "dnc_protected": bool(active) and contact_opt_out_protected(contact=contact),
        "dnc_add_form": DncAddForm(),
        "dnc_remove_form": DncRemoveForm(),
        **_consent_context(contact),
    }
    template = "contacts/_timeline.html" if _is_htmx(request) else "contacts/contact_detail.html"
    return render(request, template, context, status=status)


def _consent_context(contact: Contact) -> dict[str, Any]:
    """The number's consent and its history (events of earlier contacts with the number included)."""
    address = str(contact.mobile) if contact.mobile else None
    events = ConsentEvent.objects.filter(channel="sms", address=address) if address else contact.consent_events.all()
    return {"consent": consent_state(address=address), "consent_history": events.order_by("-occurred_at", "-id")[:50]}


CONSENT_CSV_HEADER = [
    "occurred_at", "channel", "address", "contact_id", "contact_name", "status", "source", "consent_text",
    "recorded_by", "comment",
]  # fmt: skip


class _Echo:
    def write(self, value: str) -> str:
        return value


@admin_required
def consent_log_csv(request: HttpRequest) -> HttpResponse:
    """Every consent event as CSV, for admins (a compliance officer's export); streamed, one page of rows at a
    time."""
    writer = csv.writer(_Echo())

    def rows() -> Iterator[str]:
        yield writer.writerow(CONSENT_CSV_HEADER)
        for e in consent_log().iterator(chunk_size=2000):
            name = e.contact.name if e.contact else ""
            yield writer.writerow(
                [e.occurred_at.isoformat(), e.channel, e.address, e.contact_id or "", name, e.status, e.source,
                 e.consent_text, e.recorded_by, e.comment]
            )  # fmt: skip

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="consent-log.csv"'
    return response  # type: ignore[return-value]  # a streamed HttpResponse: admin_required wants HttpResponse


@require_POST
def contact_dnc_add(request: HttpRequest, contact_id: int) -> HttpResponse:
    contact = get_object_or_404(Contact, pk=contact_id)
    form = DncAddForm(request.POST)
    if form.is_valid():
        _, created = dnc_add(
            contact=contact,
            reason=form.cleaned_data["reason"],
            source=DoNotContact.Source.MARKETER,
            comment=form.cleaned_data["comment"],
        )
        messages.success(request, "Marked Do Not Contact for SMS." if created else "Already Do Not Contact.")
    else:
        messages.error(request, "Choose a reason.")
    return redirect("contacts:contact_detail", contact_id=contact.pk)


@require_POST
def contact_dnc_remove(request: HttpRequest, contact_id: int) -> HttpResponse:
    contact = get_object_or_404(Contact, pk=contact_id)
    form = DncRemoveForm(request.POST)
    comment = form.cleaned_data["comment"] if form.is_valid() else ""
    try:
        lifted = dnc_remove(contact=contact, source=DoNotContact.Source.MARKETER, comment=comment)
    except OptOutProtected as exc:
        messages.error(request, str(exc))
        return _detail_response(request, contact, status=403)
    messages.success(request, "Do Not Contact lifted: the contact can receive SMS." if lifted else "Nothing to lift.")
    return redirect("contacts:contact_detail", contact_id=contact.pk)


# Segments


@require_GET
def segment_list(request: HttpRequest) -> HttpResponse:
    return render(request, "contacts/segment_list.html", {"segments": Segment.objects.all()})


def _rule_rows(filters: dict[str, Any]) -> list[dict[str, Any]]:
    return [_rule_context(rule) for rule in filters.get("rules") or []]


def _rule_context(rule: dict[str, str]) -> dict[str, Any]:
    field = rule.get("field", "")
    is_custom = field.startswith("custom.")
    spec = field_spec(field) or FIELDS.get(field) or (field_spec("custom.x") if field == "custom" else None)
    operators = spec.operators if spec else ()
    return {
        "field": "custom" if is_custom else field,
        "key": field.removeprefix("custom.") if is_custom else "",
        "is_custom": is_custom or field == "custom",
        "kind": spec.kind if spec else "text",
        "operator": rule.get("operator", ""),
        "operators": [(op, OPERATOR_LABELS[op]) for op in operators],
        "value": rule.get("value", ""),
        "field_choices": rule_field_choices(),
        "segments": Segment.objects.only("pk", "name"),
    }


@require_http_methods(["GET", "POST"])
def segment_edit(request: HttpRequest, segment_id: int | None = None) -> HttpResponse:
    segment = get_object_or_404(Segment, pk=segment_id) if segment_id else None
    initial = {}
    if segment:
        initial = {
            "name": segment.name,
            "description": segment.description,
            "kind": segment.kind,
            "match": segment.filters.get("match", "all"),
        }
    form = SegmentForm(request.POST or None, initial=initial, segment_id=segment.pk if segment else None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            segment, result = segment_save(
                segment=segment,
                name=data["name"],
                description=data["description"],
                kind=data["kind"],
                filters=data["filters"],
            )
        except FilterError as exc:
            for error in exc.errors:
                form.add_error("rules", error)
        else:
            members = result["members"]
            messages.success(request, f"Segment {segment.name} saved: {members:,} member{pluralize(members)}.")
            return redirect("contacts:segment_update", segment_id=segment.pk)
    if request.method == "POST":
        rules = form.cleaned_data.get("rules") or _submitted_rules(request)
        rows = [_rule_context(rule) for rule in rules]
    else:
        rows = _rule_rows(segment.filters if segment else {})
    return render(request, "contacts/segment_form.html", {"form": form, "segment": segment, "rules": rows})


def _submitted_rules(request: HttpRequest) -> list[dict[str, str]]:
    """The submitted rule rows as the form read them (shown back, with the errors, when the form is invalid)."""
    return SegmentForm.base_fields["rules"].widget.value_from_datadict(request.POST, request.FILES, "rules")


@require_GET
def segment_rule_row(request: HttpRequest) -> HttpResponse:
    form = RuleRowForm(request.GET, prefix="rules")
    field = form.cleaned_data["field"] if form.is_valid() else ""
    rule = {"field": field or "first_name", "operator": "", "value": ""}
    return render(request, "contacts/_rule_row.html", {"rule": _rule_context(rule)})


@require_POST
def segment_count(request: HttpRequest) -> HttpResponse:
    """The editor's live count: how many contacts the rules being edited match now."""
    segment_id = request.POST.get("segment_id")
    form = SegmentRulesForm(request.POST, segment_id=int(segment_id) if segment_id and segment_id.isdigit() else None)
    context: dict[str, Any] = {"kind": request.POST.get("kind", "")}
    if form.is_valid():
        context["count"] = segment_count_matching(filters=form.cleaned_data["filters"])
        context["has_rules"] = bool(form.cleaned_data["filters"]["rules"])
    else:
        context["errors"] = form.errors.get("rules", [])
    return render(request, "contacts/_segment_count.html", context)


@admin_required
@require_POST
def segment_delete_view(request: HttpRequest, segment_id: int) -> HttpResponse:
    """Admins only, as in the API: deleting a segment destroys membership history."""
    segment = get_object_or_404(Segment, pk=segment_id)
    try:
        segment_delete(segment=segment)
    except SegmentInUse as exc:
        messages.error(request, f"“{segment.name}” was not deleted. {exc}")
        return redirect("contacts:segment_update", segment_id=segment.pk)
    messages.success(request, f"Segment {segment.name} deleted.")
    return redirect("contacts:segment_list")


@require_POST
def segment_rebuild_now(request: HttpRequest, segment_id: int) -> HttpResponse:
    segment = get_object_or_404(Segment, pk=segment_id)
    result = segment_rebuild(segment=segment)
    messages.success(
        request, f"{segment.name} rebuilt: {result['added']} joined, {result['removed']} left, {result['members']} now."
    )
    return redirect(request.POST.get("next") or reverse("contacts:segment_list"))


# Imports


@csrf_exempt  # checked by _import_list, once the limit handler is in place (Django's documented pattern)
@require_http_methods(["GET", "POST"])
def import_list(request: HttpRequest) -> HttpResponse:
    # The CSRF check reads the body, so the handler that refuses an upload over the limit as it arrives (before it
    # is written to a temporary file) must be installed before that check runs.
    limit = UploadLimitHandler(request)
    request.upload_handlers.insert(0, limit)
    return _import_list(request, limit)


@csrf_protect
def _import_list(request: HttpRequest, limit: UploadLimitHandler) -> HttpResponse:
    form = ImportUploadForm(request.POST or None, request.FILES or None, refused_upload=limit.refused)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            contact_import = contact_import_create(
                upload=data["file"],
                mode=data["mode"],
                region=data["region"],
                segment=data["segment"],
                created_by=request.user.get_username(),
            )
        except MappingError as exc:
            form.add_error("file", str(exc))
        else:
            return redirect("contacts:import_detail", import_id=contact_import.pk)
    imports = ContactImport.objects.select_related("segment")[:20]
    return render(request, "contacts/import_list.html", {"form": form, "imports": imports})


@require_http_methods(["GET", "POST"])
def import_detail(request: HttpRequest, import_id: int) -> HttpResponse:
    contact_import = get_object_or_404(ContactImport, pk=import_id)
    form = None
    if contact_import.status == ContactImport.Status.MAPPING:
        form = ImportMappingForm(request.POST or None, contact_import=contact_import)
        if request.method == "POST" and form.is_valid():
            try:
                contact_import_queue(
                    contact_import=contact_import, mapping=form.mapping(), enqueue=import_contacts.delay
                )
            except MappingError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, "Import started: it runs in the background.")
                return redirect("contacts:import_detail", import_id=contact_import.pk)
    return render(
        request, "contacts/import_detail.html", {"import": contact_import, "form": form, **_progress(contact_import)}
    )


def _progress(contact_import: ContactImport) -> dict[str, Any]:
    return {"import": contact_import, "row_errors": contact_import.row_errors.all()[:1000]}


@require_GET
def import_progress(request: HttpRequest, import_id: int) -> HttpResponse:
    contact_import = get_object_or_404(ContactImport, pk=import_id)
    return render(request, "contacts/_import_progress.html", _progress(contact_import))
