"""Where a provider's webhook view hands its events to the product.

A provider's view verifies and parses its request into neutral events (``providers.base``), hands each to
``receive`` and renders the reply it gets back in the provider's own format (XML, JSON, plain text). The receiver is
``texts``' (connected in its ``AppConfig.ready``): providers never import the apps above them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, Protocol

from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .base import InboundEvent, StatusEvent


class Receiver(Protocol):
    def __call__(
        self, event: InboundEvent | StatusEvent, *, outbound_id: int | None, help_text: str, can_reply: bool
    ) -> str: ...


_receiver: Receiver | None = None


def connect(receiver: Receiver) -> None:
    """Set the function that applies webhook events (one per process; the last connected wins)."""
    global _receiver
    _receiver = receiver


def receive(
    event: InboundEvent | StatusEvent,
    *,
    outbound_id: int | None = None,
    help_text: str = "",
    can_reply: bool = True,
) -> str:
    """Apply one event; returns the text to answer an inbound message with ("" for none).

    ``outbound_id``: the message id the status callback URL carried (``base.callback_message_id``). ``help_text``
    answers HELP; ``can_reply`` false (outbound only, a sender that cannot receive) still applies the keyword but
    answers nothing. Raises ``base.WebhookRejected`` for an event the product cannot store (a field over its column).
    """
    if _receiver is None:
        raise ImproperlyConfigured("No webhook receiver is connected (texts connects it when its app is ready).")
    return _receiver(event, outbound_id=outbound_id, help_text=help_text, can_reply=can_reply)


def webhook_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A provider's webhook: POST only, no CSRF (the provider signs it), and no connection health check.

    Django's CONN_HEALTH_CHECKS costs a ``SELECT 1`` before the first query of each request, 5-8% of a status
    callback; the receiver replaces a connection the server dropped itself (Django's own flag, reset at the start of
    every request; django-stubs do not declare it)."""

    @csrf_exempt
    @require_POST
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        connection.health_check_done = True  # type: ignore[attr-defined]
        return view(request, *args, **kwargs)

    return wrapper
