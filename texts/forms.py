"""Forms of the texts app: they validate; views never parse raw input."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import URLValidator
from django.urls import reverse_lazy

from contacts.models import Contact, Segment
from contacts.phones import InvalidPhoneNumber, phone_to_e164
from providers import registry
from providers.segments import validate_length

from .channels import body_length_problem
from .content import TemplateProblem, content_validate
from .models import CountryPrice, OutboundMessage, Status, TextMessage
from .personalise import TOKEN_RE, UnknownTokens, personalise_validate


def custom_field_exists(key: str) -> bool:
    return Contact.objects.filter(custom_fields__has_key=key).exists()


class _TrackLinksSelect(forms.NullBooleanSelect):
    def __init__(self) -> None:
        super().__init__()
        self.choices = [
            ("unknown", "Automatic: tracked for marketing, as written for transactional"),
            ("true", "Always: each link becomes the recipient's own short link"),
            ("false", "Never: links go as written"),
        ]


class TextMessageForm(forms.ModelForm):
    media_urls_text = forms.CharField(
        label="Media URLs (MMS)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One https:// URL per line; leave empty for a plain SMS.",
    )
    segments = forms.ModelMultipleChoiceField(
        queryset=Segment.objects.all(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="With segments this is a segment (broadcast) message: each member receives it once.",
    )

    class Meta:
        model = TextMessage
        fields = [
            "name",
            "body",
            # After the body: the keyboard goes from the name to the message, as before channels.
            "channel",
            "content_sid",
            "language",
            "category",
            "track_links",
            "is_published",
            "publish_up",
            "publish_down",
            "segments",
            "send_to_new_members",
        ]
        widgets = {
            "body": forms.Textarea(attrs={"rows": 6, "id": "id_body", "aria-describedby": "sms-counter"}),
            "publish_up": forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
            "publish_down": forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        }
        # The seed's words ("Fill in the Internal Name, Text Message and if required, change the language").
        labels = {"name": "Internal Name", "body": "Text Message", "language": "Language", "content_sid": "Template"}
        help_texts = {
            "body": "Personalise with {{first_name}}, {{first_name|there}} (with a fallback), {{custom.plan}} "
            "or {contactfield=firstname}.",
            "channel": "SMS counts segments (160 GSM-7 or 70 UCS-2 characters each); WhatsApp and Messenger messages "
            "go to the contact's WhatsApp number or Messenger ID, up to 1,600 characters. Free-form WhatsApp messages "
            "reach only contacts who wrote on WhatsApp in the last 24 hours.",
            "category": "Marketing messages obey Do Not Contact and quiet hours; "
            "transactional ones only Do Not Contact.",
            "content_sid": "Or send one of the provider's message templates instead of a body (WhatsApp requires one "
            "outside the 24-hour window). Map each of its variables below.",
        }

    track_links = forms.NullBooleanField(
        label="Track links",
        required=False,
        widget=_TrackLinksSelect(),
        help_text="A tracked link counts clicks per recipient and is as long as a short link on this site.",
    )

    # The API's mapping (a JSON object); the editor posts one ``var_<name>`` field per variable instead.
    content_variables = forms.JSONField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["body"].required = False  # a body or a template: clean() says which is missing
        self.fields["content_sid"] = forms.CharField(
            label="Template",
            required=False,
            max_length=34,
            widget=forms.Select(
                choices=template_choices(self.instance.content_sid or ""),
                # Picking a template swaps in one mapping field per variable (texts/_template_variables.html).
                attrs={
                    "hx-get": reverse_lazy("texts:template_variables"),
                    "hx-target": "#template-variables",
                    "hx-trigger": "change",
                },
            ),
            help_text=self._meta.help_texts["content_sid"],  # type: ignore[index]
        )
        if self.instance.pk and not self.is_bound:
            self.initial["content_variables"] = self.instance.content_variables or {}
        self.fields["send_to_new_members"].help_text = (
            "While published, every scheduled run (each minute) texts contacts who joined its segments since. Off: "
            "only Send now sends it."
        )
        # A message says its channel; one posted without (an older client, a script) is an SMS, as before channels.
        self.fields["channel"].required = False
        if self.instance.pk and not self.is_bound:
            self.initial["media_urls_text"] = "\n".join(self.instance.media_urls or [])

    def clean_body(self) -> str:
        body: str = self.cleaned_data["body"]
        if not body:
            return body  # clean(): a template, or an error
        try:
            # The length is the channel's (checked in clean, which knows it); tokens are every channel's.
            personalise_validate(body, custom_field_exists=custom_field_exists)
        except (UnknownTokens, ValueError) as exc:
            raise forms.ValidationError(str(exc)) from None
        return body

    def clean_channel(self) -> str:
        return str(self.cleaned_data.get("channel") or self.instance.channel or TextMessage.Channel.SMS)

    def clean_media_urls_text(self) -> list[str]:
        urls = [line.strip() for line in self.cleaned_data["media_urls_text"].splitlines() if line.strip()]
        # The provider fetches media over the web; only http(s) addresses are links anywhere they are shown.
        validator = forms.URLField(assume_scheme="https", validators=[URLValidator(schemes=["http", "https"])])
        for url in urls:
            try:
                # Tokens render per contact, URL-encoded: the URL must be one with any value in their place.
                validator.clean(TOKEN_RE.sub("x", url))
            except forms.ValidationError:
                raise forms.ValidationError(f"“{url}” is not an http(s) URL.") from None
            try:
                personalise_validate(url, custom_field_exists=custom_field_exists)
            except (UnknownTokens, ValueError) as exc:
                raise forms.ValidationError(f"“{url}”: {exc}") from None
        if len(urls) > 10:
            raise forms.ValidationError("A message carries at most 10 media URLs.")
        return urls

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        up, down = data.get("publish_up"), data.get("publish_down")
        if up and down and down <= up:
            self.add_error("publish_down", "Publish until must be after publish from.")
        # The channel's own limit (``texts.channels``): SMS's words as before, the others name their channel.
        problem = body_length_problem(str(data.get("channel") or "sms"), str(data.get("body") or ""))
        if problem and "body" not in self.errors:
            self.add_error("body", problem)
        self._clean_content(data)
        return data

    def variable_rows(self) -> list[tuple[str, str, str]]:
        """(name, sample, value) of each variable of the chosen template, for the editor's mapping fields."""
        sid = (self["content_sid"].value() or "").strip()
        template = registry.template(sid) if sid else None
        if template is None:
            return []
        posted = posted_variables(self.data) if self.is_bound else None
        mapping = posted if posted is not None else (self.instance.content_variables or {})
        return [(name, sample, str(mapping.get(name, ""))) for name, sample in template.variables.items()]

    def _clean_content(self, data: dict[str, Any]) -> None:
        sid = (data.get("content_sid") or "").strip()
        if not sid:
            data["content_sid"], data["content_variables"] = None, {}
            if not data.get("body") and "body" not in self.errors:
                self.add_error("body", "Write the text message, or pick a template.")
            return
        if data.get("body"):
            self.add_error("body", "A text message sends a body or a template, not both: empty the body to send it.")
        if data.get("media_urls_text"):
            self.add_error("media_urls_text", "A template carries its own media: remove the media URLs.")
        posted = posted_variables(self.data)
        variables = posted if posted is not None else data.get("content_variables")
        try:
            _, data["content_variables"] = content_validate(
                sid=sid, variables=variables if variables is not None else {}, custom_field_exists=custom_field_exists
            )
        except TemplateProblem as exc:
            self.add_error("content_variables" if "variable" in str(exc).lower() else "content_sid", str(exc))
            return
        data["content_sid"] = sid

    def save(self, commit: bool = True) -> TextMessage:
        self.instance.media_urls = self.cleaned_data.get("media_urls_text", [])
        self.instance.content_sid = self.cleaned_data.get("content_sid") or None
        self.instance.content_variables = self.cleaned_data.get("content_variables") or {}
        return super().save(commit=commit)


VARIABLE_PREFIX = "var_"


def template_choices(current: str) -> list[tuple[str, str]]:
    """The sending provider's templates for the editor's picker (the message's own even if it was removed)."""
    choices = [("", "— none: send the body —")]
    for t in registry.templates():
        approval = f", WhatsApp {t.approval}" if t.approval else ""
        choices.append((t.sid, f"{t.name} ({t.language or 'any language'}{approval})"))
    if current and current not in {sid for sid, _ in choices}:
        gone = registry.template(current)
        choices.append((current, f"{gone.name if gone else current} (removed at the provider)"))
    return choices


class SearchForm(forms.Form):
    q = forms.CharField(label="Search", required=False, max_length=200)


def posted_variables(data: Any) -> dict[str, str] | None:
    """The editor's ``var_<name>`` fields as a mapping; None when none were posted."""
    names = [key for key in data if key.startswith(VARIABLE_PREFIX)]
    if not names:
        return None
    return {key.removeprefix(VARIABLE_PREFIX): str(data.get(key, ""))[:10_000] for key in names}


class PreviewForm(forms.Form):
    contact = forms.ModelChoiceField(queryset=Contact.objects.all(), required=False, label="Preview for")
    body = forms.CharField(required=False, max_length=10_000)
    content_sid = forms.CharField(required=False, max_length=34)

    def variables(self) -> dict[str, str]:
        return posted_variables(self.data) or {}


class TemplateVariablesForm(forms.Form):
    """The editor's template picker asking for the mapping fields of the template it picked."""

    content_sid = forms.CharField(required=False, max_length=34)


class TestSendForm(forms.Form):
    to_number = forms.CharField(label="Send a test to", max_length=32, help_text="Any number, e.g. +44 7911 123456")

    def clean_to_number(self) -> str:
        try:
            return phone_to_e164(self.cleaned_data["to_number"])
        except InvalidPhoneNumber as exc:
            raise forms.ValidationError(str(exc)) from None


class OutboundFilterForm(forms.Form):
    status = forms.ChoiceField(choices=[("", "Any status"), *Status.choices], required=False)
    text_message = forms.ModelChoiceField(
        queryset=TextMessage.objects.order_by("name"), required=False, empty_label="Any text message"
    )
    source = forms.ChoiceField(choices=[("", "Any source"), *OutboundMessage.Source.choices], required=False)


class ReplyForm(forms.Form):
    """A reply from the conversations inbox: sent as written (tokens like {{first_name}} still personalise)."""

    body = forms.CharField(
        label="Reply",
        max_length=10_000,
        error_messages={"required": "Write something to send."},
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Write a reply…"}),
    )

    def clean_body(self) -> str:
        body: str = self.cleaned_data["body"].strip()
        if not body:
            raise forms.ValidationError("Write something to send.")
        try:
            validate_length(body)
            personalise_validate(body, custom_field_exists=lambda key: True)
        except (UnknownTokens, ValueError) as exc:
            raise forms.ValidationError(str(exc)) from None
        return body


class CountryPriceForm(forms.ModelForm):
    class Meta:
        model = CountryPrice
        fields = ["country", "price_per_segment", "currency"]
        labels = {"price_per_segment": "Price of one segment"}

    def clean_country(self) -> str:
        country: str = self.cleaned_data["country"].strip().upper()
        if country != CountryPrice.ANY and not (len(country) == 2 and country.isalpha()):
            raise forms.ValidationError("Two letters (GB, US), or * for every other country.")
        return country

    def clean_currency(self) -> str:
        currency: str = self.cleaned_data["currency"].strip().upper()
        if not (len(currency) == 3 and currency.isalpha()):
            raise forms.ValidationError("A three-letter currency code, e.g. USD.")
        return currency

    def clean_price_per_segment(self) -> Any:
        price = self.cleaned_data["price_per_segment"]
        if price is not None and price < 0:
            raise forms.ValidationError("A price cannot be negative.")
        return price
