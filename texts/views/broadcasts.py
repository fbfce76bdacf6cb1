"""Views of broadcasts on the text message page: an htmx panel (audience, pending, progress) and "Send now"."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from ..models import TextMessage
from ..reports import report_for, sending_progress
from ..services.broadcasts import (
    broadcast_audience,
    broadcast_not_sendable_reason,
    broadcast_progress,
    broadcast_request_send,
)
from .text_messages import _get_text


def _panel(request: HttpRequest, text: TextMessage, *, error: str = "") -> HttpResponse:
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
    }
    return render(request, "texts/_broadcast.html", context)


@require_GET
def broadcast_panel(request: HttpRequest, pk: int) -> HttpResponse:
    """htmx: the panel, polled every two seconds while a run is queued or running."""
    return _panel(request, _get_text(pk))


@require_POST
def broadcast_send_now(request: HttpRequest, pk: int) -> HttpResponse:
    """Queue the same job as cron for this message (a Celery task on ``sms_bulk``)."""
    text = _get_text(pk)
    reason = broadcast_not_sendable_reason(text)
    if reason:
        error = f"Not sent: {reason}."
    elif broadcast_progress(text_message_id=text.pk).active:
        error = "A run is already in progress for this text message."
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
