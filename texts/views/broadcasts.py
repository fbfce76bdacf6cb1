"""Views of broadcasts on the text message page: an htmx panel (audience, pending, progress) and "Send now"."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from ..estimates import Estimate, broadcast_estimate, next_scheduled_run, when_it_goes
from ..models import TextMessage
from ..reports import report_for, sending_progress
from ..services.broadcasts import (
    broadcast_audience,
    broadcast_not_sendable_reason,
    broadcast_progress,
    broadcast_request_send,
)
from .text_messages import _get_text


def _panel(
    request: HttpRequest, text: TextMessage, *, error: str = "", confirm: Estimate | None = None, action: str = ""
) -> HttpResponse:
    progress = broadcast_progress(text_message_id=text.pk)
    report = report_for(text)
    context = {
        "text": text,
        "is_broadcast": text.segments.exists(),
        "audience": broadcast_audience(text_message=text),
        "report": report,
        "progress": progress,
        # While messages wait to go: the rate, the time left and the sender whose limit sets it.
        "sending": sending_progress(text) if report.pending else None,
        "not_sendable": broadcast_not_sendable_reason(text),
        "error": error,
        # Send now, or switching automatic sends on, waits for the marketer to confirm what it will do.
        "confirm": confirm,
        "confirm_action": action,
        "next_run": next_scheduled_run(),
    }
    return render(request, "texts/_broadcast.html", context)


def _estimate(text: TextMessage, *, when: str) -> Estimate:
    segment_ids = list(text.segments.values_list("pk", flat=True))
    return broadcast_estimate(text_message=text, segment_ids=segment_ids, when=when)


@require_GET
def broadcast_panel(request: HttpRequest, pk: int) -> HttpResponse:
    """htmx: the panel, polled every two seconds while a run is queued or running (``?confirm=send``: with the
    confirmation of Send now, for a page that had no JavaScript when the button was pressed)."""
    text = _get_text(pk)
    if request.GET.get("confirm") == "send" and not broadcast_not_sendable_reason(text):
        return _panel(request, text, confirm=_estimate(text, when="now"), action="send")
    return _panel(request, text)


@require_POST
def broadcast_new_members(request: HttpRequest, pk: int) -> HttpResponse:
    """The switch: new segment members receive it at every scheduled run, or only when Send now is pressed. Turning
    it on sends to everyone who has not received it yet, so that asks for confirmation first."""
    text = _get_text(pk)
    turn_on = request.POST.get("on") == "1"
    if turn_on and request.POST.get("confirmed") != "1" and not broadcast_not_sendable_reason(text):
        estimate = _estimate(text, when=when_it_goes(text))
        if estimate.recipients:
            return _panel(request, text, confirm=estimate, action="new_members")
    TextMessage.objects.filter(pk=text.pk).update(send_to_new_members=turn_on)
    text.refresh_from_db()
    if request.htmx:  # type: ignore[attr-defined]
        return _panel(request, text)
    return redirect("texts:edit", pk=text.pk)


@require_POST
def broadcast_send_now(request: HttpRequest, pk: int) -> HttpResponse:
    """Queue the same job as cron for this message (a Celery task on ``sms_bulk``)."""
    text = _get_text(pk)
    reason = broadcast_not_sendable_reason(text)
    if reason:
        error = f"Not sent: {reason}."
    elif broadcast_progress(text_message_id=text.pk).active:
        error = "A run is already in progress for this text message."
    elif request.POST.get("confirmed") != "1":
        if not request.htmx:  # type: ignore[attr-defined]
            return redirect(f"{reverse('texts:edit', args=[text.pk])}?confirm_send=1")
        return _panel(request, text, confirm=_estimate(text, when="now"), action="send")
    else:
        error = ""
        broadcast_request_send(text_message=text)
    if request.htmx:  # type: ignore[attr-defined]
        return _panel(request, text, error=error)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, f"“{text.name}” is queued for sending to its segments.")
    return redirect("texts:edit", pk=text.pk)
