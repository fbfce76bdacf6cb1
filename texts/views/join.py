"""The public double opt-in form (/join/): no login, CSRF-protected, limited per client address and per number.

A request sends "Reply YES to confirm" through the pipeline (``texts.double_opt_in``); the page then says so,
whatever the number's state (it never tells a stranger whether a number opted out or is known).
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods
from django_ratelimit.core import is_ratelimited

from contacts.phones import InvalidPhoneNumber, phone_to_e164

from ..double_opt_in import double_opt_in_consent_text, double_opt_in_request_by_form


class JoinForm(forms.Form):
    mobile = forms.CharField(label="Mobile number", max_length=32, widget=forms.TextInput(attrs={"type": "tel"}))
    agree = forms.BooleanField(label="I agree", required=True)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["agree"].label = double_opt_in_consent_text()
        self.fields["agree"].error_messages["required"] = "Tick the box to agree to receive marketing texts."

    def clean_mobile(self) -> str:
        try:
            return phone_to_e164(self.cleaned_data["mobile"])
        except InvalidPhoneNumber as exc:
            raise forms.ValidationError(f"That is not a mobile number we can text: {exc}") from exc


def _number_key(group: str, request: HttpRequest) -> str:
    # The number as typed, normalised when it parses: "+1 415…" and "(415)…" count as one.
    raw = str(request.POST.get("mobile", ""))
    try:
        return phone_to_e164(raw)
    except InvalidPhoneNumber:
        return raw.strip()


def _limited(request: HttpRequest) -> bool:
    by_ip = is_ratelimited(
        request, group="join-ip", key="ip", rate=settings.SMS_JOIN_RATE_PER_IP, method="POST", increment=True
    )
    by_number = is_ratelimited(
        request, group="join-number", key=_number_key, rate=settings.SMS_JOIN_RATE_PER_NUMBER, method="POST",
        increment=True,
    )  # fmt: skip
    return by_ip or by_number


@login_not_required
@require_http_methods(["GET", "POST"])
def join(request: HttpRequest) -> HttpResponse:
    if request.method == "POST" and _limited(request):
        return render(request, "texts/join/page.html", {"form": JoinForm(), "limited": True}, status=429)
    form = JoinForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        double_opt_in_request_by_form(mobile=form.cleaned_data["mobile"], ip=str(request.META.get("REMOTE_ADDR", "")))
        return redirect(f"{request.path}?sent=1")
    status = 400 if request.method == "POST" else 200
    return render(
        request, "texts/join/page.html", {"form": form, "sent": request.GET.get("sent") == "1"}, status=status
    )
