"""Forms of the campaigns app: the campaign itself, one event of any kind, a contact added by hand."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import Q

from contacts.models import Contact, Segment
from texts.models import TextMessage

from .engine import CONTACT_FIELDS
from .models import EVENT_TYPE_OF_KIND, Campaign, CampaignEvent, EventKind, EventType, IntervalUnit, TriggerMode

WEEKDAYS = [(0, "Mon"), (1, "Tue"), (2, "Wed"), (3, "Thu"), (4, "Fri"), (5, "Sat"), (6, "Sun")]
OPERATORS = [
    ("eq", "equals"),
    ("neq", "does not equal"),
    ("contains", "contains"),
    ("starts_with", "starts with"),
    ("ends_with", "ends with"),
    ("gt", "greater than"),
    ("lt", "less than"),
    ("empty", "is empty"),
    ("not_empty", "is not empty"),
]


class CampaignForm(forms.ModelForm):
    class Meta:
        model = Campaign
        fields = ["name", "description", "segments"]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 3}),
            "segments": forms.CheckboxSelectMultiple,
        }
        labels = {"segments": "Source segments"}
        help_texts = {"segments": "Contacts in these segments join the campaign; they leave it when they leave them."}


class _TextMessageChoice(forms.ModelChoiceField):
    """Every channel's text messages, each saying its channel when it is not SMS ("Order update (WhatsApp)")."""

    def label_from_instance(self, obj: Any) -> str:
        return obj.name if obj.channel == "sms" else f"{obj.name} ({obj.get_channel_display()})"


class EventForm(forms.Form):
    """One event; the fields shown depend on its kind (``FIELDS_BY_KIND``)."""

    name = forms.CharField(label="Label on the canvas", max_length=200, required=False)
    text_message = _TextMessageChoice(
        label="Text message",
        queryset=TextMessage.objects.order_by("name"),
        required=False,
        empty_label="Choose a text message…",
    )
    segment = forms.ModelChoiceField(label="Segment", queryset=Segment.objects.all(), required=False)
    segments = forms.ModelMultipleChoiceField(
        label="Segments", queryset=Segment.objects.all(), required=False, widget=forms.CheckboxSelectMultiple
    )
    field = forms.ChoiceField(label="Contact field", required=False)
    operator = forms.ChoiceField(label="Operator", choices=OPERATORS, required=False)
    value = forms.CharField(label="Value", max_length=200, required=False)
    pattern = forms.CharField(
        label="Reply pattern",
        max_length=200,
        required=False,
        help_text="Leave empty for any reply. <code>*</code> matches anything, <code>?</code> one character; case "
        "is ignored (e.g. <code>yes*</code>).",
    )
    keyword = forms.CharField(label="Keyword", max_length=100, required=False)
    button = forms.CharField(
        label="Button",
        max_length=255,
        required=False,
        help_text="The button's payload or label (case is ignored); leave empty for any button.",
    )
    url_pattern = forms.CharField(
        label="Link pattern",
        max_length=500,
        required=False,
        help_text="Leave empty for any link. <code>*</code> matches anything (e.g. "
        "<code>*example.com/pricing*</code>); matched against the link as written in the text message.",
    )
    wait_amount = forms.IntegerField(label="Wait for a reply for", min_value=1, required=False, initial=1)
    wait_unit = forms.ChoiceField(label="Unit", choices=IntervalUnit.choices, required=False, initial="days")
    trigger_mode = forms.ChoiceField(
        label="When", choices=TriggerMode.choices, initial=TriggerMode.IMMEDIATE, widget=forms.RadioSelect
    )
    trigger_interval = forms.IntegerField(label="Interval", min_value=1, required=False)
    trigger_unit = forms.ChoiceField(label="Interval unit", choices=IntervalUnit.choices, required=False)
    trigger_date = forms.DateTimeField(
        label="Date and time",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    window_start = forms.TimeField(
        label="Only from", required=False, widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M")
    )
    window_end = forms.TimeField(
        label="until", required=False, widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M")
    )
    weekdays = forms.TypedMultipleChoiceField(
        label="Only on",
        choices=WEEKDAYS,
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Hours and days are in each contact's own timezone. No day ticked means every day.",
    )

    TRIGGER = ("trigger_mode", "trigger_interval", "trigger_unit", "trigger_date", "window_start", "window_end",
               "weekdays")  # fmt: skip
    FIELDS_BY_KIND: dict[str, tuple[str, ...]] = {
        EventKind.SEND_TEXT_MESSAGE: ("text_message", "name", *TRIGGER),
        EventKind.ADD_TO_SEGMENT: ("segment", "name", *TRIGGER),
        EventKind.REMOVE_FROM_SEGMENT: ("segment", "name", *TRIGGER),
        EventKind.ADD_DNC: ("name", *TRIGGER),
        EventKind.REMOVE_DNC: ("name", *TRIGGER),
        EventKind.REPLIED_TO_TEXT: ("pattern", "wait_amount", "wait_unit", "name"),
        EventKind.REPLY_CONTAINS_KEYWORD: ("keyword", "wait_amount", "wait_unit", "name"),
        EventKind.REPLIED_WITH_BUTTON: ("button", "wait_amount", "wait_unit", "name"),
        EventKind.CLICKED_LINK: ("url_pattern", "wait_amount", "wait_unit", "name"),
        EventKind.CONTACT_FIELD: ("field", "operator", "value", "name", *TRIGGER),
        EventKind.IN_SEGMENT: ("segments", "name", *TRIGGER),
        EventKind.DNC_SMS: ("name", *TRIGGER),
    }
    PROPERTY_FIELDS = {
        "segment": "segment_id",
        "segments": "segment_ids",
        "field": "field",
        "operator": "operator",
        "value": "value",
        "pattern": "pattern",
        "keyword": "keyword",
        "button": "button",
        "url_pattern": "url_pattern",
    }

    def __init__(self, *args: Any, kind: str, instance: CampaignEvent | None = None, **kwargs: Any) -> None:
        bound = bool(kwargs.get("data")) or bool(args and args[0] is not None)
        if instance is not None and not bound:
            kwargs["initial"] = self.initial_from(instance)
        super().__init__(*args, **kwargs)
        self.kind = kind
        self.fields["text_message"].widget.attrs["data-text-message-select"] = ""
        custom = [("custom:" + k, f"Custom: {k}") for k in self._custom_keys()]
        field_field: Any = self.fields["field"]
        field_field.choices = [(f, f.replace("_", " ").capitalize()) for f in CONTACT_FIELDS] + custom
        for name in list(self.fields):
            if name not in self.FIELDS_BY_KIND[kind]:
                del self.fields[name]
        if kind == EventKind.CLICKED_LINK:
            self.fields["wait_amount"].label = "Wait for a click for"

    @staticmethod
    def _custom_keys() -> list[str]:
        keys: set[str] = set()
        for fields in Contact.objects.exclude(custom_fields={}).values_list("custom_fields", flat=True)[:200]:
            keys.update(fields or {})
        return sorted(keys)

    @classmethod
    def initial_from(cls, event: CampaignEvent) -> dict[str, Any]:
        initial: dict[str, Any] = {k: getattr(event, k) for k in ("name", "wait_amount", "wait_unit", *cls.TRIGGER)}
        initial["text_message"] = event.text_message_id
        for field, prop in cls.PROPERTY_FIELDS.items():
            if prop in event.properties:
                initial[field] = event.properties[prop]
        return initial

    @property
    def is_decision(self) -> bool:
        return EVENT_TYPE_OF_KIND[self.kind] == EventType.DECISION

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = self.kind
        if kind == EventKind.SEND_TEXT_MESSAGE and not data.get("text_message"):
            self.add_error("text_message", "Choose a text message, or create one with New Text Message.")
        if kind in (EventKind.ADD_TO_SEGMENT, EventKind.REMOVE_FROM_SEGMENT) and not data.get("segment"):
            self.add_error("segment", "Choose a segment.")
        if kind == EventKind.IN_SEGMENT and not data.get("segments"):
            self.add_error("segments", "Choose at least one segment.")
        if kind == EventKind.REPLY_CONTAINS_KEYWORD and not (data.get("keyword") or "").strip():
            self.add_error("keyword", "Enter the keyword to look for.")
        if kind == EventKind.CONTACT_FIELD:
            if not data.get("field"):
                self.add_error("field", "Choose a contact field.")
            if data.get("operator") not in ("empty", "not_empty") and not data.get("value"):
                self.add_error("value", "Enter the value to compare with.")
        if self.is_decision and not data.get("wait_amount"):
            waited = "a click" if kind == EventKind.CLICKED_LINK else "a reply"
            self.add_error("wait_amount", f"Say how long to wait for {waited} before taking the no path.")
        mode = data.get("trigger_mode")
        if mode == TriggerMode.INTERVAL and not data.get("trigger_interval"):
            self.add_error("trigger_interval", "Enter how long to wait.")
        if mode == TriggerMode.DATE and not data.get("trigger_date"):
            self.add_error("trigger_date", "Enter the date and time.")
        if bool(data.get("window_start")) != bool(data.get("window_end")):
            self.add_error("window_end", "Give both the start and the end of the hours, or neither.")
        if data.get("window_start") and data.get("window_start") == data.get("window_end"):
            self.add_error("window_end", "The end must differ from the start.")
        return data

    def event_data(self) -> dict[str, Any]:
        """The model fields to save, ``properties`` included."""
        data = self.cleaned_data
        properties: dict[str, Any] = {}
        for field, prop in self.PROPERTY_FIELDS.items():
            if field not in self.fields:
                continue
            value = data.get(field)
            if field == "segment":
                value = value.pk if value else None
            elif field == "segments":
                value = [s.pk for s in value or []]
            properties[prop] = value
        out: dict[str, Any] = {"name": data.get("name", ""), "properties": properties}
        if "text_message" in self.fields:
            out["text_message"] = data.get("text_message")
        if self.is_decision:
            out.update(wait_amount=data["wait_amount"], wait_unit=data.get("wait_unit") or "days")
        else:
            out.update(
                trigger_mode=data["trigger_mode"],
                trigger_interval=data.get("trigger_interval"),
                trigger_unit=data.get("trigger_unit") or "days",
                trigger_date=data.get("trigger_date"),
                window_start=data.get("window_start"),
                window_end=data.get("window_end"),
                weekdays=data.get("weekdays") or [],
            )
        return out


class MemberAddForm(forms.Form):
    contact = forms.CharField(label="Mobile number or email", max_length=200)

    def clean_contact(self) -> Contact:
        value = self.cleaned_data["contact"].strip()
        contact = Contact.objects.filter(Q(email__iexact=value) | Q(mobile=value)).first()
        if contact is None:
            raise forms.ValidationError("No contact has that mobile number or email.")
        return contact
