"""Settings > Webhooks (admins): endpoints, their delivery log, "Send test event", retry and a new secret."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from smsapp.core.roles import admin_required

from . import services
from .forms import EndpointForm
from .models import Delivery, DeliveryStatus, Endpoint

LOG_SIZE = 50


def _endpoint(pk: int) -> Endpoint:
    return get_object_or_404(Endpoint, pk=pk)


@admin_required
@require_http_methods(["GET", "POST"])
def endpoint_list(request: HttpRequest) -> HttpResponse:
    form = EndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        secret = services.endpoint_secret_new()
        endpoint = services.endpoint_save(endpoint=form.save(commit=False), secret=secret)
        # Shown once: it is stored encrypted and never on a page again (a new one can be made).
        request.session["hooks_new_secret"] = {"endpoint": endpoint.pk, "secret": secret}
        messages.success(request, f"Webhook to {endpoint.url} added.")
        return redirect("hooks:detail", pk=endpoint.pk)
    endpoints = Endpoint.objects.all()
    return render(request, "hooks/list.html", {"form": form, "endpoints": endpoints})


def _log_context(endpoint: Endpoint) -> dict[str, object]:
    deliveries = list(Delivery.objects.filter(endpoint=endpoint).order_by("-id")[:LOG_SIZE])
    busy = any(d.status in (DeliveryStatus.PENDING, DeliveryStatus.SENDING) for d in deliveries)
    return {"endpoint": endpoint, "deliveries": deliveries, "busy": busy}


@admin_required
@require_http_methods(["GET", "POST"])
def endpoint_detail(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = _endpoint(pk)
    form = EndpointForm(request.POST or None, instance=endpoint)
    if request.method == "POST" and form.is_valid():
        services.endpoint_save(endpoint=form.save(commit=False))
        messages.success(request, "Webhook saved.")
        return redirect("hooks:detail", pk=endpoint.pk)
    shown = request.session.pop("hooks_new_secret", None)
    secret = shown["secret"] if shown and shown.get("endpoint") == endpoint.pk else ""
    return render(request, "hooks/detail.html", {**_log_context(endpoint), "form": form, "new_secret": secret})


@admin_required
@require_GET
def endpoint_log(request: HttpRequest, pk: int) -> HttpResponse:
    """htmx: the delivery log, polled while a delivery is pending."""
    return render(request, "hooks/_log.html", _log_context(_endpoint(pk)))


@admin_required
@require_POST
def endpoint_test(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = _endpoint(pk)
    services.hooks_send_test(endpoint=endpoint)
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "hooks/_log.html", _log_context(endpoint))
    messages.success(request, "Test event queued: its delivery shows in the log below.")
    return redirect("hooks:detail", pk=endpoint.pk)


@admin_required
@require_POST
def endpoint_rotate(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = _endpoint(pk)
    secret = services.endpoint_secret_new()
    services.endpoint_save(endpoint=endpoint, secret=secret)
    request.session["hooks_new_secret"] = {"endpoint": endpoint.pk, "secret": secret}
    messages.success(request, "New signing secret made: update your receiver; the old one no longer signs.")
    return redirect("hooks:detail", pk=endpoint.pk)


@admin_required
@require_POST
def endpoint_delete(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = _endpoint(pk)
    services.endpoint_delete(endpoint=endpoint)
    messages.success(request, f"Webhook to {endpoint.url} removed with its delivery log.")
    return redirect("hooks:list")


@admin_required
@require_POST
def delivery_retry(request: HttpRequest, pk: int, delivery_id: int) -> HttpResponse:
    endpoint = _endpoint(pk)
    services.delivery_retry_now(delivery=get_object_or_404(Delivery, pk=delivery_id, endpoint=endpoint))
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "hooks/_log.html", _log_context(endpoint))
    return redirect("hooks:detail", pk=endpoint.pk)
