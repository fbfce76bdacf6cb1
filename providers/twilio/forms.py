"""The Twilio plugin page's forms: the settings and the phone number pool (a formset)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import phonenumbers
from django import forms
from django.forms import BaseFormSet, formset_factory

from .config import SHORT_CODE, default_rate
from .models import Direction, NumberType, SenderType

ACCOUNT_SID = re.compile(r"^AC[0-9a-f]{32}$")
API_KEY_SID = re.compile(r"^SK[0-9a-f]{32}$")
MESSAGING_SERVICE_SID = re.compile(r"^MG[0-9a-f]{32}$")
ALPHANUMERIC_ID = re.compile(r"^[A-Za-z0-9 ]{1,11}$")


def _sid(value: str, pattern: re.Pattern[str], prefix: str, what: str) -> str:
    value = value.strip()
    if value and not pattern.match(value[:2].upper() + value[2:].lower()):
        raise forms.ValidationError(
            f"{what} starts with {prefix} followed by 32 hexadecimal characters (34 in all); “{value[:40]}” is not one."
        )
    return value[:2].upper() + value[2:].lower() if value else ""


class TwilioSettingsForm(forms.Form):
    enabled = forms.BooleanField(label="Text Message Enabled", required=False)
    account_sid = forms.CharField(label="Account SID", required=False, max_length=34)
    auth_token = forms.CharField(
        label="Auth Token",
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
    )
    api_key_sid = forms.CharField(label="API Key SID (optional)", required=False, max_length=34)
    api_key_secret = forms.CharField(
        label="API Key Secret",
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
    )
    sender_type = forms.ChoiceField(label="Send from", choices=SenderType.choices, widget=forms.RadioSelect)
    messaging_service_sid = forms.CharField(label="Messaging Service SID", required=False, max_length=34)
    alphanumeric_sender_id = forms.CharField(
        label="Alphanumeric Sender ID",
        required=False,
        max_length=11,
        help_text="1-11 letters, digits and spaces, at least one letter.",
    )
    whatsapp_from = forms.CharField(
        label="WhatsApp sender number",
        required=False,
        max_length=40,
        help_text="The WhatsApp-enabled number in E.164 (e.g. +14155238886), without “whatsapp:”. Blank: the "
        "Messaging Service sends WhatsApp messages, if there is one.",
    )
    messenger_from = forms.CharField(
        label="Messenger Sender ID",
        required=False,
        max_length=64,
        help_text="The Facebook Page ID Twilio shows for the Messenger sender, without “messenger:”. Blank: the "
        "Messaging Service sends Messenger messages, if there is one.",
    )
    sender_rate_per_second = forms.DecimalField(
        label="Messages per second (Messaging Service, Alphanumeric Sender ID, WhatsApp and Messenger senders)",
        min_value=Decimal("0.01"),
        max_digits=8,
        decimal_places=2,
        initial=Decimal("10"),
    )
    direction = forms.ChoiceField(label="Direction", choices=Direction.choices)
    status_callbacks = forms.BooleanField(label="Ask Twilio for delivery status callbacks", required=False)
    help_text = forms.CharField(label="HELP reply", required=False, max_length=320)

    def __init__(
        self,
        *args: Any,
        stored_token: bool = False,
        stored_secret: bool = False,
        local_fake: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.stored_token = stored_token
        self.stored_secret = stored_secret
        self.local_fake = local_fake  # `make run` with nothing configured: the local fake_twilio's credentials

    def clean_account_sid(self) -> str:
        return _sid(self.cleaned_data["account_sid"], ACCOUNT_SID, "AC", "An Account SID")

    def clean_api_key_sid(self) -> str:
        return _sid(self.cleaned_data["api_key_sid"], API_KEY_SID, "SK", "An API Key SID")

    def clean_messaging_service_sid(self) -> str:
        return _sid(self.cleaned_data["messaging_service_sid"], MESSAGING_SERVICE_SID, "MG", "A Messaging Service SID")

    def clean_whatsapp_from(self) -> str:
        value: str = self.cleaned_data["whatsapp_from"].strip().removeprefix("whatsapp:").replace(" ", "")
        if value and not (
            re.match(r"^\+[1-9]\d{6,14}$", value) and phonenumbers.is_valid_number(phonenumbers.parse(value, None))
        ):
            raise forms.ValidationError(f"“{value[:40]}” is not a phone number in E.164 format (e.g. +14155238886).")
        return value

    def clean_messenger_from(self) -> str:
        value: str = self.cleaned_data["messenger_from"].strip().removeprefix("messenger:")
        if value and not re.fullmatch(r"\d{5,64}", value):
            raise forms.ValidationError(f"“{value[:40]}” is not a Facebook Page ID (digits only).")
        return value

    def clean_alphanumeric_sender_id(self) -> str:
        value: str = self.cleaned_data["alphanumeric_sender_id"].strip()
        if value and (not ALPHANUMERIC_ID.match(value) or not re.search(r"[A-Za-z]", value)):
            raise forms.ValidationError(
                "An Alphanumeric Sender ID has 1-11 characters: letters, digits and spaces, with at least one letter."
            )
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        sender_type = data.get("sender_type")
        if (
            sender_type == SenderType.MESSAGING_SERVICE
            and not data.get("messaging_service_sid")
            and not self.errors.get("messaging_service_sid")
        ):
            self.add_error("messaging_service_sid", "Enter the Messaging Service SID to send from it.")
        if (
            sender_type == SenderType.ALPHANUMERIC
            and not data.get("alphanumeric_sender_id")
            and not self.errors.get("alphanumeric_sender_id")
        ):
            self.add_error("alphanumeric_sender_id", "Enter the Alphanumeric Sender ID to send from it.")
        if data.get("api_key_sid") and not (data.get("api_key_secret") or self.stored_secret):
            self.add_error("api_key_secret", "Enter the API Key Secret that goes with the API Key SID.")
        if data.get("enabled") and not (self.local_fake and not data.get("account_sid")):
            # Enabled means "ready to send": it needs an account and a credential (the environment may give them).
            if not data.get("account_sid") and "account_sid" not in self.errors:
                self.add_error("account_sid", "Enter the Account SID to enable text messages.")
            has_credential = data.get("auth_token") or self.stored_token or data.get("api_key_sid")
            if not has_credential:
                self.add_error("auth_token", "Enter the Auth Token (or an API Key) to enable text messages.")
        return data


class SenderNumberForm(forms.Form):
    phone_number = forms.CharField(label="Phone number (E.164)", max_length=16, required=False)
    friendly_name = forms.CharField(label="Friendly name", max_length=64, required=False)
    number_type = forms.ChoiceField(label="Type", choices=NumberType.choices, initial=NumberType.LONG_CODE)
    rate_per_second = forms.DecimalField(
        label="Messages per second",
        required=False,
        min_value=Decimal("0.01"),
        max_digits=8,
        decimal_places=2,
        help_text="Blank: Twilio's default (1 US/CA long code, 3 toll-free, 100 short code, 10 other).",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        row = (self.prefix or "").rsplit("-", 1)[-1]
        for field in self.fields.values():
            # The pool is a table with one header row: each input still needs its own accessible name.
            field.widget.attrs["aria-label"] = f"{field.label}, row {int(row) + 1 if row.isdigit() else row}"

    def clean_phone_number(self) -> str:
        value: str = self.cleaned_data["phone_number"].strip().replace(" ", "").replace("-", "")
        if not value:
            return ""
        if SHORT_CODE.match(value):
            return value  # a short code as Twilio writes it: 55501
        if not re.match(r"^\+[1-9]\d{2,14}$", value):
            raise forms.ValidationError(
                f"“{value}” is not in E.164 format (a + then the country code and number) nor a short code (5 or 6 "
                "digits, as Twilio writes it)."
            )
        parsed = phonenumbers.parse(value, None)
        short_code = len(value) <= 8
        if not short_code and not phonenumbers.is_valid_number(parsed):
            raise forms.ValidationError(f"“{value}” is not a valid phone number.")
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("phone_number") and not data.get("rate_per_second"):
            data["rate_per_second"] = default_rate(data["phone_number"], data.get("number_type") or NumberType.OTHER)
        return data


class BaseSenderNumberFormSet(BaseFormSet[SenderNumberForm]):
    def __init__(self, *args: Any, require_one: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.require_one = require_one

    def numbers(self) -> list[dict[str, Any]]:
        """The pool as entered: filled rows not marked for deletion, in order."""
        return [
            f.cleaned_data
            for f in self.forms
            if f.cleaned_data.get("phone_number") and not f.cleaned_data.get("DELETE")
        ]

    def clean(self) -> None:
        if any(self.errors):
            return
        seen: set[str] = set()
        for number in self.numbers():
            if number["phone_number"] in seen:
                raise forms.ValidationError(f"{number['phone_number']} is in the pool twice; each number once.")
            seen.add(number["phone_number"])
        if self.require_one and not seen:
            raise forms.ValidationError("Add at least one phone number to send from the number pool.")


_SenderNumberFormSet = formset_factory(SenderNumberForm, formset=BaseSenderNumberFormSet, extra=1, can_delete=True)


def sender_number_formset(*args: Any, **kwargs: Any) -> BaseSenderNumberFormSet:
    """The pool's formset, typed (formset_factory returns an untyped class)."""
    formset = _SenderNumberFormSet(*args, **kwargs)
    assert isinstance(formset, BaseSenderNumberFormSet)
    return formset
