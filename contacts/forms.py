"""Forms of the contacts app: every piece of input is validated here, views never parse raw input."""

from __future__ import annotations

import re
import zoneinfo
from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.template.defaultfilters import filesizeformat
from django.utils.html import format_html

from .filters import FIELDS, FilterError, cycle_message, filters_clean, segment_cycle
from .importer import CORE_FIELDS, FLAG_FIELDS, TARGET_LABELS, _custom_key
from .models import Contact, ContactImport, DoNotContact, Segment
from .phones import InvalidPhoneNumber, country_is_known, phone_to_e164, unknown_country_message

_ZONES = zoneinfo.available_timezones()
PAGE_SIZE = 50


class ContactSearchForm(forms.Form):
    q = forms.CharField(required=False, label="Search", help_text="Name, email or number in any format")
    segment = forms.ModelChoiceField(Segment.objects.all(), required=False, empty_label="Any segment")
    dnc = forms.ChoiceField(
        required=False,
        label="SMS Do Not Contact",
        choices=[("", "Anyone"), ("yes", "Do Not Contact only"), ("no", "Contactable only")],
    )
    after = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)


class ContactForm(forms.ModelForm):
    mobile = forms.CharField(
        required=False,
        max_length=40,
        label="Mobile number",
        help_text="Any format; numbers without a country code are read in the contact's country.",
    )
    whatsapp = forms.CharField(
        required=False,
        max_length=40,
        label="WhatsApp number",
        help_text="Kept apart from the mobile; leave empty for none, or tick the box below to use the mobile.",
    )
    whatsapp_is_mobile = forms.BooleanField(required=False, label="WhatsApp on the mobile number")
    custom_fields_text = forms.CharField(
        required=False,
        label="Custom fields",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line: key = value",
    )

    class Meta:
        model = Contact
        fields = ["first_name", "last_name", "email", "country", "mobile", "timezone", "preferred_language"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["mobile"] = str(self.instance.mobile or "")
            self.initial["whatsapp"] = str(self.instance.whatsapp or "")
        # The mobile is offered as the WhatsApp number: shown in the empty box, taken with the box ticked.
        if self.instance.mobile:
            self.fields["whatsapp"].widget.attrs["placeholder"] = str(self.instance.mobile)
            self.initial["custom_fields_text"] = "\n".join(f"{k} = {v}" for k, v in self.instance.custom_fields.items())

    def clean_country(self) -> str:
        country = self.cleaned_data["country"].strip().upper()
        if country and not re.fullmatch(r"[A-Z]{2}", country):
            raise forms.ValidationError("Use the two-letter ISO code, e.g. GB, FR, US.")
        if country and not country_is_known(country):
            raise forms.ValidationError(unknown_country_message(country))
        return country

    def clean_timezone(self) -> str:
        value = self.cleaned_data["timezone"].strip()
        if value and value not in _ZONES:
            raise forms.ValidationError(f"“{value}” is not a time zone name, e.g. Europe/London.")
        return value

    def clean_custom_fields_text(self) -> dict[str, str]:
        result: dict[str, str] = {}
        for number, line in enumerate(self.cleaned_data["custom_fields_text"].splitlines(), start=1):
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise forms.ValidationError(f"Line {number}: write key = value.")
            result[_custom_key(key)] = value.strip()
        return result

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        raw = data.get("mobile", "")
        if raw:
            try:
                e164 = phone_to_e164(raw, region=data.get("country") or None)
            except InvalidPhoneNumber as exc:
                self.add_error("mobile", str(exc))
                return data
            owner = Contact.objects.filter(mobile=e164).exclude(pk=self.instance.pk).first()
            if owner:
                self.add_error(
                    "mobile",
                    format_html(
                        '{} (read as {}) already belongs to <a href="/contacts/{}/">{}</a>.', raw, e164, owner.pk, owner
                    ),
                )
            data["mobile"] = e164
        else:
            data["mobile"] = None
        self._clean_whatsapp(data)
        return data

    def _clean_whatsapp(self, data: dict[str, Any]) -> None:
        raw = str(data.get("whatsapp") or "").strip().removeprefix("whatsapp:")
        if data.get("whatsapp_is_mobile") and not raw:
            if not data.get("mobile"):
                self.add_error("whatsapp_is_mobile", "The contact has no mobile number to use for WhatsApp.")
                return
            raw = str(data["mobile"])
        if not raw:
            data["whatsapp"] = None
            return
        try:
            e164 = phone_to_e164(raw, region=data.get("country") or None)
        except InvalidPhoneNumber as exc:
            self.add_error("whatsapp", str(exc))
            return
        owner = Contact.objects.filter(whatsapp=e164).exclude(pk=self.instance.pk).first()
        if owner:
            self.add_error(
                "whatsapp",
                format_html(
                    '{} (read as {}) already belongs to <a href="/contacts/{}/">{}</a>.', raw, e164, owner.pk, owner
                ),
            )
            return
        data["whatsapp"] = e164

    def save(self, commit: bool = True) -> Contact:
        contact = super().save(commit=False)
        contact.mobile = self.cleaned_data["mobile"]
        contact.whatsapp = self.cleaned_data.get("whatsapp")
        # The box shows every custom field: what it holds is the whole set, so a cleared line removes that field.
        contact.custom_fields = self.cleaned_data["custom_fields_text"]
        if commit:
            contact.save()
        return contact


class DncAddForm(forms.Form):
    reason = forms.ChoiceField(choices=DoNotContact.Reason.choices, initial=DoNotContact.Reason.MANUAL)
    comment = forms.CharField(required=False, max_length=500, widget=forms.Textarea(attrs={"rows": 2}))


class DncRemoveForm(forms.Form):
    comment = forms.CharField(required=False, max_length=500, label="Why lift it?")


class BulkActionForm(forms.Form):
    ACTIONS = [
        ("add_segment", "Add to segment"),
        ("remove_segment", "Remove from segment"),
        ("dnc", "Mark SMS Do Not Contact"),
    ]
    ids = forms.ModelMultipleChoiceField(Contact.objects.all(), error_messages={"required": "Select some contacts."})
    action = forms.ChoiceField(choices=ACTIONS)
    segment = forms.ModelChoiceField(Segment.objects.all(), required=False, empty_label="Choose a segment")

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("action") in {"add_segment", "remove_segment"} and not data.get("segment"):
            self.add_error("segment", "Choose the segment.")
        if len(data.get("ids") or []) > 500:
            self.add_error("ids", "Select at most 500 contacts at a time.")
        return data


class RulesWidget(forms.Widget):
    """Reads the rule rows of the segment editor: parallel lists ``rules-field``, ``-operator``, ``-value``."""

    def value_from_datadict(self, data: Any, files: Any, name: str) -> list[dict[str, str]]:
        fields, operators = data.getlist(f"{name}-field"), data.getlist(f"{name}-operator")
        values, keys = data.getlist(f"{name}-value"), data.getlist(f"{name}-key")
        rules = []
        for index, field in enumerate(fields):
            key = keys[index].strip() if index < len(keys) else ""
            rules.append(
                {
                    "field": f"custom.{key}" if field == "custom" else field,
                    "operator": operators[index] if index < len(operators) else "",
                    "value": values[index] if index < len(values) else "",
                }
            )
        return rules


class SegmentRulesForm(forms.Form):
    match = forms.ChoiceField(
        choices=[("all", "Match all rules (AND)"), ("any", "Match any rule (OR)")], initial="all", required=False
    )
    rules = forms.Field(widget=RulesWidget, required=False)

    def __init__(self, *args: Any, segment_id: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.segment_id = segment_id

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        try:
            data["filters"] = filters_clean(
                {"match": data.get("match") or "all", "rules": data.get("rules") or []}, segment_id=self.segment_id
            )
        except FilterError as exc:
            for error in exc.errors:
                self.add_error("rules", error)
        return data


class SegmentForm(SegmentRulesForm):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    kind = forms.ChoiceField(choices=Segment.Kind.choices, label="Type", initial=Segment.Kind.STATIC)

    field_order = ["name", "description", "kind", "match", "rules"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        filters = data.get("filters")
        if self.segment_id and data.get("kind") == Segment.Kind.FILTER and filters and not self.errors.get("rules"):
            chain = segment_cycle(segment_id=self.segment_id, filters=filters)
            if chain:
                self.add_error("rules", cycle_message(chain=chain, name=data.get("name") or "this segment"))
        return data


def rule_field_choices() -> list[tuple[str, str]]:
    return [(name, spec.label) for name, spec in FIELDS.items()] + [("custom", "Custom field…")]


class RuleRowForm(forms.Form):
    """The field of one rule row, when the editor re-renders the row for another field."""

    field = forms.ChoiceField(choices=rule_field_choices, required=False)


def upload_too_large_message() -> str:
    limit = filesizeformat(settings.IMPORT_MAX_UPLOAD_BYTES)
    return (
        f"The file is larger than {limit}, the most an upload may be (IMPORT_MAX_UPLOAD_BYTES): split it into "
        "smaller files, or import it with the import_contacts command."
    )


class UploadLimitHandler(FileUploadHandler):
    """Refuses an uploaded file once it passes ``IMPORT_MAX_UPLOAD_BYTES``, while it arrives: the rest is read and
    thrown away, never written to a temporary file. ``refused`` says whether it did (the form then says why)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refused = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > settings.IMPORT_MAX_UPLOAD_BYTES:
            self.refused = True
            raise SkipFile
        return raw_data  # the next handlers store it as usual

    def file_complete(self, file_size: int) -> None:
        return None


class ImportUploadForm(forms.Form):
    file = forms.FileField(label="CSV file", help_text="UTF-8, first row names the columns, one contact per row")
    mode = forms.ChoiceField(
        choices=ContactImport.Mode.choices, initial=ContactImport.Mode.UPDATE, label="Existing contacts"
    )
    region = forms.CharField(
        required=False,
        max_length=2,
        label="Country for national numbers",
        help_text="ISO code used for numbers without +country code when the row has no country (blank: default)",
    )
    segment = forms.ModelChoiceField(Segment.objects.all(), required=False, empty_label="No segment")

    def __init__(self, *args: Any, refused_upload: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refused_upload = refused_upload

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > settings.IMPORT_MAX_UPLOAD_BYTES:
            raise forms.ValidationError(upload_too_large_message())
        return upload

    def clean(self) -> dict[str, Any]:
        if self.refused_upload:
            self.errors.pop("file", None)  # not "This field is required": it came, and was too large
            self.add_error("file", upload_too_large_message())
        return super().clean() or self.cleaned_data

    def clean_region(self) -> str:
        region = self.cleaned_data["region"].strip().upper()
        if region and not re.fullmatch(r"[A-Z]{2}", region):
            raise forms.ValidationError("Use the two-letter ISO code, e.g. GB.")
        return region


class ImportMappingForm(forms.Form):
    """One select per column of the file, preset to the automatic guess; none at all for a file wider than
    ``IMPORT_MAX_COLUMNS`` (stored before the limit, or under a larger one): ``refusal`` then says why."""

    def __init__(self, *args: Any, contact_import: ContactImport, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.headers = contact_import.headers
        self.refusal = ""
        if len(self.headers) > settings.IMPORT_MAX_COLUMNS:
            self.refusal = (
                f"This file has {len(self.headers):,} columns; at most {settings.IMPORT_MAX_COLUMNS:,} can be "
                "imported (IMPORT_MAX_COLUMNS). Remove the columns you do not need and upload it again."
            )
            return
        core = [(name, TARGET_LABELS[name]) for name in [*CORE_FIELDS, *FLAG_FIELDS]]
        for index, header in enumerate(self.headers):
            key = _custom_key(header) if header else f"column_{index + 1}"
            choices = [
                ("", "Do not import"),
                *core,
                (f"custom.{key}", f"Custom field “{key}”"),
                (f"custom_date.{key}", f"Custom date field “{key}”"),
            ]
            current = contact_import.mapping.get(str(index), "")
            if current and current not in dict(choices):
                choices.append((current, current))
            self.fields[f"col_{index}"] = forms.ChoiceField(
                choices=choices, required=False, label=header or f"Column {index + 1}", initial=current
            )

    def clean(self) -> dict[str, Any]:
        if self.refusal:
            raise forms.ValidationError(self.refusal)
        return super().clean() or self.cleaned_data

    def mapping(self) -> dict[str, str]:
        return {str(index): self.cleaned_data.get(f"col_{index}") or "" for index in range(len(self.headers))}
