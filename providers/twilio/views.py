"""Twilio's webhook (``POST /sms/twilio/callback``) and Settings > Plugins > Twilio (admins only).

The webhook is thin: the provider verifies the signature and parses the fields into neutral events, the product
applies them (``providers.webhooks.receive``) and the answer is TwiML (``<Response/>``, or one ``<Message>`` for a
keyword reply).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from smsapp.core.roles import admin_required

from .. import webhooks
from ..base import InboundEvent, ProviderError, StatusEvent, WebhookRejected, callback_message_id
from ..crypto import UndecryptableSecret, mask
from . import services
from .config import TwilioConfig, get_config, public_callback_url
from .forms import TwilioSettingsForm, sender_number_formset
from .models import ContentTemplate, SenderType, TwilioSettings
from .provider import SIGNATURE_SETTINGS_HEADER, twilio_provider
from .webhooks import twiml

logger = logging.getLogger(__name__)


@webhooks.webhook_view
def twilio_callback(request: HttpRequest) -> HttpResponse:
    """Inbound replies and delivery status callbacks alike (Twilio posts both to the same URL)."""
    # The URL Twilio signed is the public one (behind a proxy the request's own host and scheme differ).
    url = settings.PUBLIC_BASE_URL + request.get_full_path()
    provider = twilio_provider()
    try:
        event = provider.parse_webhook(url=url, params=request.POST.dict(), headers=_signature_headers(request))
        help_text, can_reply = _answer(provider.config, event)
        reply = webhooks.receive(
            event, outbound_id=callback_message_id(request.GET), help_text=help_text, can_reply=can_reply
        )
    except WebhookRejected as exc:
        logger.warning("Twilio callback refused (%s): %s", exc.status, exc.reason)
        return HttpResponse(exc.reason, status=exc.status, content_type="text/plain")
    return twiml(reply)


# The only headers the signature check reads. Copying all of them (``dict(request.headers)`` builds every header from
# the WSGI environ) cost a status callback more than parsing its fields.
SIGNATURE_HEADERS = {
    name: "HTTP_" + name.upper().replace("-", "_") for name in ("X-Twilio-Signature", SIGNATURE_SETTINGS_HEADER)
}


def _signature_headers(request: HttpRequest) -> dict[str, str]:
    meta = request.META
    return {name: meta[key] for name, key in SIGNATURE_HEADERS.items() if key in meta}


def _answer(config: TwilioConfig, event: InboundEvent | StatusEvent) -> tuple[str, bool]:
    """Whether a reply may be answered, and the HELP text. The reply came to one of our senders: a pool number can
    answer even when the default is an alphanumeric ID (US contacts are sent from the pool, and reply to it)."""
    if not isinstance(event, InboundEvent):
        return "", False
    sender = config.sender_for(event.to_number) or config.default_sender
    return config.help_text, config.inbound_enabled and (sender is None or sender.sender.can_receive_replies)


# Settings > Plugins > Twilio


ENV_FIELDS = {
    "account_sid": "TWILIO_ACCOUNT_SID",
    "auth_token": "TWILIO_AUTH_TOKEN",
    "api_key_sid": "TWILIO_API_KEY_SID",
    "api_key_secret": "TWILIO_API_KEY_SECRET",
    "whatsapp_from": "TWILIO_WHATSAPP_FROM",
    "messenger_from": "TWILIO_MESSENGER_FROM",
}


def _stored_secret(row: TwilioSettings, attr: str) -> str:
    try:
        return str(getattr(row, attr))
    except UndecryptableSecret:
        return ""


def _initial(row: TwilioSettings) -> dict[str, object]:
    return {
        name: getattr(row, name)
        for name in (
            "enabled",
            "account_sid",
            "api_key_sid",
            "sender_type",
            "messaging_service_sid",
            "alphanumeric_sender_id",
            "whatsapp_from",
            "messenger_from",
            "sender_rate_per_second",
            "direction",
            "status_callbacks",
            "help_text",
        )
    }


@admin_required
@require_http_methods(["GET", "POST"])
def twilio_settings(request: HttpRequest) -> HttpResponse:
    # Opening the page must not create the settings row: a new row (enabled off) would switch sending off and make
    # the page and the dashboard disagree. Until the first save, the page shows the configuration in effect.
    row = TwilioSettings.objects.filter(id=TwilioSettings.SINGLETON_ID).first()
    config = get_config()
    initial = _initial(row) if row is not None else {**_initial(TwilioSettings()), "enabled": config.enabled}
    row = row or TwilioSettings(id=TwilioSettings.SINGLETON_ID)
    token, secret = _stored_secret(row, "auth_token"), _stored_secret(row, "api_key_secret")
    data = request.POST if request.method == "POST" else None
    form = TwilioSettingsForm(
        data, initial=initial, stored_token=bool(token), stored_secret=bool(secret), local_fake=config.local_fake
    )
    numbers = sender_number_formset(
        data,
        prefix="numbers",
        initial=[
            {
                "phone_number": n.phone_number,
                "friendly_name": n.friendly_name,
                "number_type": n.number_type,
                "rate_per_second": n.rate_per_second,
            }
            for n in (row.numbers.all() if row.pk and not row._state.adding else [])
        ],
        require_one=request.method == "POST"
        and request.POST.get("sender_type") == SenderType.NUMBERS
        and "TWILIO_FROM" not in get_config().from_env,
    )
    if request.method == "POST" and form.is_valid() and numbers.is_valid():
        services.twilio_settings_save(data=form.cleaned_data, numbers=numbers.numbers())
        messages.success(request, "Twilio settings saved.")
        return redirect("twilio:settings")
    return render(
        request,
        "twilio/settings.html",
        {
            "form": form,
            "local_fake_url": config.api_base_url if config.local_fake else "",
            "alphanumeric_without_pool": config.sender_type == SenderType.ALPHANUMERIC
            and not any(s.sender.kind == "number" for s in config.senders),
            "numbers": numbers,
            "config": config,
            "callback_url": public_callback_url(),
            "token_mask": mask(token),
            "secret_mask": mask(secret),
            "env_fields": {field: env for field, env in ENV_FIELDS.items() if env in config.from_env},
            "skip_signature": settings.SMS_CALLBACK_SKIP_SIGNATURE,
            "env_sender": sorted(config.from_env & {"TWILIO_FROM", "TWILIO_MESSAGING_SERVICE_SID"}),
            "content_templates": ContentTemplate.objects.all(),
        },
    )


@admin_required
@require_POST
def twilio_test(request: HttpRequest) -> HttpResponse:
    form = TwilioSettingsForm(request.POST)
    form.is_valid()  # only the credential fields matter here; their own errors are reported below
    bad = [form.errors[f][0] for f in ("account_sid", "api_key_sid") if f in form.errors]
    if bad:
        return render(request, "twilio/_test_result.html", {"ok": False, "message": bad[0]})
    result = services.twilio_connection_check(data=form.cleaned_data)
    return render(request, "twilio/_test_result.html", {"ok": result.ok, "message": result.message})


@admin_required
@require_POST
def twilio_templates_sync(request: HttpRequest) -> HttpResponse:
    """Read the account's Content Templates now (the configuration in effect: save the page first)."""
    try:
        summary = services.content_templates_sync()
    except ProviderError as exc:
        messages.error(request, f"Could not read the Content Templates from Twilio: {exc.message}")
    else:
        messages.success(request, f"Templates synced. {summary}")
    return redirect(reverse("twilio:settings") + "#content-templates")
