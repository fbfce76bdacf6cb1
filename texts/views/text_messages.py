"""Views of text messages: the list, the editor, preview, test send, the report and the outbound log. Thin functions:
forms validate, services write, reports read."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, ProtectedError, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from contacts.models import Contact
from providers import registry
from providers.base import MessageTemplate
from providers.segments import SegmentInfo, count_segments

from .. import services
from ..content import TemplateProblem, content_render, content_template
from ..engagement import charts_context, cost_for, links_for
from ..errors import explain
from ..estimates import Estimate, broadcast_estimate, editor_sample, sample_recipient, when_it_goes
from ..footer import opt_out_footer, with_footer
from ..forms import (
    OutboundFilterForm,
    PreviewForm,
    SearchForm,
    TemplateVariablesForm,
    TestSendForm,
    TextMessageForm,
)
from ..models import OutboundMessage, Status, TextMessage
from ..personalise import MalformedToken, UnknownTokens, personalise_render, personalise_validate
from ..reports import report_for
from ..services.links import body_as_sent

PAGE_SIZE = 50


def _get_text(pk: int) -> TextMessage:
    """Every logged-in user (admin or marketer) may manage text messages; one helper in case that changes."""
    return get_object_or_404(TextMessage, pk=pk)


def _was_sent(text_message: TextMessage) -> bool:
    return text_message.outbound_messages.filter(provider_called_at__isnull=False).exists()


@require_GET
def text_message_list(request: HttpRequest) -> HttpResponse:
    form = SearchForm(request.GET or None)
    texts = TextMessage.objects.annotate(
        sent_count=Count("outbound_messages", filter=Q(outbound_messages__sent_at__isnull=False)),
        segment_count=Count("segments", distinct=True),
    ).order_by("-id")
    if form.is_valid() and form.cleaned_data["q"]:
        q = form.cleaned_data["q"]
        texts = texts.filter(Q(name__icontains=q) | Q(body__icontains=q))
    page = Paginator(texts, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "texts/list.html", {"form": form, "page": page})


@require_http_methods(["GET", "POST"])
def text_message_create(request: HttpRequest) -> HttpResponse:
    # ?popup=1: opened by the campaign builder's "New Text Message" button in a window of its own.
    popup = (request.POST if request.method == "POST" else request.GET).get("popup") == "1"
    form = TextMessageForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        surprise = _unconfirmed_broadcast(request, form)
        if surprise is not None:
            return render(
                request, "texts/edit.html", {**_editor_context(form, None), "popup": popup, "confirm": surprise}
            )
        form.instance.created_by = request.user if request.user.is_authenticated else None
        text = form.save()
        if popup:  # tell the builder which message to select, then close the window
            return render(request, "campaigns/text_message_saved_popup.html", {"text_message": text})
        messages.success(request, f"Text message “{text.name}” created.")
        return redirect("texts:edit", pk=text.pk)
    return render(request, "texts/edit.html", {**_editor_context(form, None), "popup": popup})


@require_http_methods(["GET", "POST"])
def text_message_edit(request: HttpRequest, pk: int) -> HttpResponse:
    text = _get_text(pk)
    form = TextMessageForm(request.POST or None, instance=text)
    if request.method == "POST" and form.is_valid():
        surprise = _unconfirmed_broadcast(request, form)
        if surprise is not None:
            return render(request, "texts/edit.html", {**_editor_context(form, text), "confirm": surprise})
        form.save()
        messages.success(request, f"Text message “{text.name}” saved.")
        return redirect("texts:edit", pk=text.pk)
    return render(request, "texts/edit.html", _editor_context(form, text))


def _unconfirmed_broadcast(request: HttpRequest, form: TextMessageForm) -> Estimate | None:
    """What saving would send by itself (a published broadcast to new segment members, with someone to receive it),
    unless the marketer confirmed it; "hold" saves it so that only Send now sends it."""
    choice = request.POST.get("confirmed", "")
    if choice == "hold":
        form.instance.send_to_new_members = False
    if choice:
        return None
    text = form.instance
    segment_ids = [s.pk for s in form.cleaned_data.get("segments") or []]
    if not (text.is_published and text.send_to_new_members and segment_ids):
        return None
    if text.publish_down and text.publish_down <= timezone.now():
        return None
    estimate = broadcast_estimate(
        text_message=text, segment_ids=segment_ids, body=form.cleaned_data["body"], when=when_it_goes(text)
    )
    return estimate if estimate.recipients else None


def _count_as_sent(form: TextMessageForm, contact: Contact | None) -> SegmentInfo:
    """The counter before any script runs: the body as the sample recipient gets it (links shortened if tracked)."""
    rendered = personalise_render(form["body"].value() or "", contact=contact)
    as_sent = body_as_sent(rendered) if form.instance.tracks_links else rendered
    # A marketing text's first message to a contact carries the opt-out footer: the count is that one's.
    marketing = (form["category"].value() or "marketing") == "marketing"
    return count_segments(with_footer(as_sent, opt_out_footer()) if marketing else as_sent)


def _editor_context(form: TextMessageForm, text: TextMessage | None) -> dict[str, object]:
    sample_contact = sample_recipient(text)
    return {
        "form": form,
        "text": text,
        "tokens": ["{{first_name|there}}", "{{last_name}}", "{{email}}", "{{custom.plan}}"],
        "variable_tokens": VARIABLE_TOKENS,
        "preview_form": PreviewForm(),
        "variable_rows": form.variable_rows(),
        "template": _chosen_template(form["content_sid"].value() or ""),
        "template_error": "",
        # The mapping's errors: its form field is hidden (the API's JSON), its inputs are the partial's.
        "variable_errors": form.errors.get("content_variables", []) if form.is_bound else [],
        "test_form": TestSendForm(),
        "was_sent": bool(text and _was_sent(text)),
        "info": _count_as_sent(form, sample_contact),
        "sample": editor_sample(sample_contact, marketing=(form["category"].value() or "marketing") == "marketing"),
    }


@require_POST
def text_message_clone(request: HttpRequest, pk: int) -> HttpResponse:
    original = _get_text(pk)
    copy = TextMessage.objects.create(
        name=f"Copy of {original.name}"[:200],
        channel=original.channel,
        content_sid=original.content_sid,
        body=original.body,
        language=original.language,
        category=original.category,
        is_published=False,
        media_urls=list(original.media_urls or []),
        created_by=request.user if request.user.is_authenticated else None,
    )
    copy.segments.set(original.segments.all())
    messages.success(request, f"Cloned as “{copy.name}” (unpublished).")
    return redirect("texts:edit", pk=copy.pk)


@require_POST
def text_message_delete(request: HttpRequest, pk: int) -> HttpResponse:
    text = _get_text(pk)
    if _was_sent(text):
        messages.error(
            request, f"“{text.name}” has been sent, so its report must stay: unpublish it instead of deleting it."
        )
        return redirect("texts:edit", pk=text.pk)
    name = text.name
    try:
        text.delete()
    except ProtectedError:  # a campaign's Send Text Message action still uses it
        messages.error(request, f"“{name}” is used by a campaign: choose another text message there first.")
        return redirect("texts:edit", pk=text.pk)
    messages.success(request, f"Text message “{name}” deleted.")
    return redirect("texts:list")


@require_POST
def text_message_unpublish(request: HttpRequest, pk: int) -> HttpResponse:
    text = _get_text(pk)
    TextMessage.objects.filter(pk=text.pk).update(is_published=False)
    messages.success(request, f"“{text.name}” is unpublished: nothing new will send it.")
    return redirect("texts:edit", pk=text.pk)


def _chosen_template(sid: str) -> MessageTemplate | None:
    try:
        return content_template(sid) if sid else None
    except TemplateProblem:
        return registry.template(sid)


@require_GET
def text_message_template_variables(request: HttpRequest) -> HttpResponse:
    """htmx: one mapping field per variable of the template the editor's picker chose."""
    form = TemplateVariablesForm(request.GET)
    sid = form.cleaned_data["content_sid"] if form.is_valid() else ""
    template, error = None, ""
    if sid:
        try:
            template = content_template(sid)
        except TemplateProblem as exc:
            error = str(exc)
    rows = [(name, sample, "") for name, sample in template.variables.items()] if template else []
    context = {
        "template": template,
        "variable_rows": rows,
        "template_error": error,
        "variable_tokens": VARIABLE_TOKENS,
        "variable_errors": [],
    }
    return render(request, "texts/_template_variables.html", context)


VARIABLE_TOKENS = ["{{first_name|there}}", "{{last_name}}", "{{email}}", "{{mobile}}", "{{custom.plan}}"]


def _preview_template(form: PreviewForm, contact: Contact | None) -> dict[str, object]:
    """A template as the contact reads it: each variable's mapping rendered for them (tokens as typed without one)."""
    try:
        template = content_template(form.cleaned_data["content_sid"])
    except TemplateProblem as exc:
        return {"error": str(exc)}
    mapping = form.variables()
    for name, value in mapping.items():
        try:
            personalise_validate(value, custom_field_exists=lambda key: True)
        except (UnknownTokens, MalformedToken) as exc:
            return {"error": f"Variable {name}: {exc}"}
    values = content_render(mapping, contact=contact) if contact else mapping
    rendered = template.render(values)
    return {"rendered": rendered, "template": template, "contact": contact, "media_urls": template.media_urls}


@require_GET
def text_message_preview(request: HttpRequest) -> HttpResponse:
    """htmx: the body (or the chosen template) rendered for a chosen contact, with its length after
    personalisation."""
    form = PreviewForm(request.GET)
    context: dict[str, object] = {}
    if form.is_valid() and form.cleaned_data["content_sid"]:
        context = _preview_template(form, form.cleaned_data["contact"])
    elif form.is_valid():
        body = form.cleaned_data["body"] or ""
        contact: Contact | None = form.cleaned_data["contact"]
        try:
            personalise_validate(body, custom_field_exists=lambda key: True)
        except (UnknownTokens, MalformedToken) as exc:
            context["error"] = str(exc)
        else:
            rendered = personalise_render(body, contact=contact) if contact else body
            context.update(rendered=rendered, info=count_segments(rendered), contact=contact)
    else:
        context["error"] = "Choose a contact from the list."
    return render(request, "texts/_preview.html", context)


@require_POST
def text_message_test_send(request: HttpRequest, pk: int) -> HttpResponse:
    text = _get_text(pk)
    form = TestSendForm(request.POST)
    if form.is_valid():
        message = services.test_send(text_message=text, to_number=form.cleaned_data["to_number"])
        context = {"test_form": TestSendForm(), "sent_to": message.to_number, "text": text}
    else:
        context = {"test_form": form, "text": text}
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "texts/_test_send.html", context)
    if form.is_valid():
        messages.success(request, f"Test queued to {form.cleaned_data['to_number']}.")
    else:
        messages.error(request, "; ".join(str(e) for e in form.errors.get("to_number", [])))
    return redirect("texts:edit", pk=text.pk)


@require_GET
def text_message_report(request: HttpRequest, pk: int) -> HttpResponse:
    text = _get_text(pk)
    outbound = OutboundMessage.objects.filter(text_message=text)
    page = Paginator(outbound.select_related("contact").order_by("-id"), PAGE_SIZE).get_page(request.GET.get("page"))
    for row in page:
        row.explanation = explain(row.error_code, row.error_message, provider=row.provider)  # type: ignore[attr-defined]
    return render(
        request,
        "texts/report.html",
        {
            "text": text,
            "report": report_for(text),
            "cost": cost_for(outbound),
            "links": links_for(outbound),
            **charts_context(outbound, prefix="report"),
            "page": page,
            "statuses": [s.value for s in Status],
        },
    )


@require_GET
def outbound_list(request: HttpRequest) -> HttpResponse:
    form = OutboundFilterForm(request.GET or None)
    rows = OutboundMessage.objects.select_related("contact", "text_message").order_by("-id")
    if form.is_valid():
        data = form.cleaned_data
        if data["status"]:
            rows = rows.filter(status=data["status"])
        if data["text_message"]:
            rows = rows.filter(text_message=data["text_message"])
        if data["source"]:
            rows = rows.filter(source=data["source"])
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    for row in page:
        row.explanation = explain(row.error_code, row.error_message, provider=row.provider)  # type: ignore[attr-defined]
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "texts/outbound_list.html", {"form": form, "page": page, "query": query.urlencode()})
