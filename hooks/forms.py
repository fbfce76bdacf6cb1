"""Forms of outgoing webhooks: they validate, views never parse raw input."""

from __future__ import annotations

from typing import Any

from django import forms

from .models import Endpoint, Event


class EndpointForm(forms.ModelForm):
    url = forms.URLField(
        label="URL",
        max_length=500,
        assume_scheme="https",
        help_text="Where to POST the events, e.g. https://crm.example.com/hooks/sms",
    )
    events = forms.MultipleChoiceField(
        choices=Event.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="Each event is one signed POST.",
        error_messages={"required": "Choose at least one event."},
    )

    class Meta:
        model = Endpoint
        fields = ["url", "description", "events", "active"]

    def clean_url(self) -> str:
        url: str = self.cleaned_data["url"]
        if not url.lower().startswith(("https://", "http://")):
            raise forms.ValidationError("Use an http:// or https:// URL.")
        return url

    def clean_events(self) -> list[str]:
        chosen: list[str] = self.cleaned_data["events"]
        if not chosen:
            raise forms.ValidationError("Choose at least one event.")
        return chosen

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            self.initial["events"] = list(self.instance.events or [])
