"""Settings > SMS prices (admins): the per-country price of a segment that the broadcast estimate uses."""

from __future__ import annotations

from django.contrib import messages
from django.forms import modelformset_factory
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from smsapp.core.roles import admin_required

from ..forms import CountryPriceForm
from ..models import CountryPrice

PriceFormSet = modelformset_factory(CountryPrice, form=CountryPriceForm, extra=3, can_delete=True)


@admin_required
@require_http_methods(["GET", "POST"])
def price_list(request: HttpRequest) -> HttpResponse:
    formset = PriceFormSet(request.POST or None, queryset=CountryPrice.objects.order_by("country"))
    if request.method == "POST" and formset.is_valid():
        formset.save()
        messages.success(request, "Prices saved: estimates use them from now on.")
        return redirect("texts:prices")
    return render(request, "texts/prices.html", {"formset": formset})
