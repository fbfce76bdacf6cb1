"""The conversations inbox (htmx): the list of contacts who wrote, a thread per contact that updates itself, and the
reply box. Thin views: ``texts.services.conversations`` reads and writes."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from contacts.models import Contact

from ..forms import ReplyForm
from ..services.conversations import (
    ReplyRefused,
    conversation_list,
    conversation_read,
    conversation_reply,
    reply_blockers,
    thread,
    thread_version,
)

PAGE_SIZE = 50


def _contact(contact_id: int) -> Contact:
    # Every marketer works the shared inbox (no ownership), as with contacts.
    return get_object_or_404(Contact, pk=contact_id)


@require_GET
def inbox(request: HttpRequest) -> HttpResponse:
    page = Paginator(conversation_list(), PAGE_SIZE).get_page(request.GET.get("page"))
    template = "texts/conversations/_list.html" if request.htmx else "texts/conversations/inbox.html"  # type: ignore[attr-defined]
    return render(request, template, {"page": page})


def _thread_context(contact: Contact, form: ReplyForm | None = None, error: str = "") -> dict[str, object]:
    return {
        "contact": contact,
        "entries": thread(contact=contact),
        "version": thread_version(contact=contact),
        "blockers": reply_blockers(contact=contact),
        "form": form or ReplyForm(),
        "error": error,
    }


@require_GET
def conversation(request: HttpRequest, contact_id: int) -> HttpResponse:
    contact = _contact(contact_id)
    conversation_read(contact=contact)
    return render(request, "texts/conversations/thread_page.html", _thread_context(contact))


@require_GET
def conversation_thread(request: HttpRequest, contact_id: int) -> HttpResponse:
    """htmx, every few seconds: the thread, or 204 (nothing to swap) when nothing changed since ``?v=``."""
    contact = _contact(contact_id)
    if request.GET.get("v") == thread_version(contact=contact):
        return HttpResponse(status=204)
    conversation_read(contact=contact)  # the person looking at it has read what came in
    return render(request, "texts/conversations/_thread.html", _thread_context(contact))


@require_POST
def conversation_send(request: HttpRequest, contact_id: int) -> HttpResponse:
    contact = _contact(contact_id)
    form = ReplyForm(request.POST)
    error = ""
    if form.is_valid():
        try:
            conversation_reply(contact=contact, body=form.cleaned_data["body"])
        except ReplyRefused as exc:
            error = f"Not sent: {exc}"
        else:
            form = ReplyForm()
    if request.htmx:  # type: ignore[attr-defined]
        # The thread in place of the old one, and the reply box (emptied, or with its errors) out of band.
        context = {**_thread_context(contact, form, error), "oob": True}
        return render(request, "texts/conversations/_reply_sent.html", context)
    if error or form.errors:
        messages.error(request, error or "; ".join(str(e) for e in form.errors.get("body", [])))
    else:
        messages.success(request, "Reply queued.")
    return redirect("texts_conversations:thread_page", contact_id=contact.pk)
