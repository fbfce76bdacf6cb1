"""Which column of a CSV file goes to which contact field: guessed from the headers, checked when edited."""

from __future__ import annotations

import re
from typing import cast

from django.db.models import CharField

from ..models import Contact

CORE_FIELDS = ["first_name", "last_name", "email", "mobile", "country", "timezone", "preferred_language"]
TARGET_LABELS = {
    "first_name": "First name",
    "last_name": "Last name",
    "email": "Email",
    "mobile": "Mobile number",
    "country": "Country",
    "timezone": "Timezone",
    "preferred_language": "Preferred language",
    "dnc": "SMS Do Not Contact (yes/no)",
    "sms_consent": "SMS marketing consent (yes/no)",
    "sms_consent_at": "When SMS consent was given (date or date-time)",
}
# Targets of a contact's own columns beside its fields (checked like them, never custom fields).
FLAG_FIELDS = ("dnc", "sms_consent", "sms_consent_at")
# The longest value each text field of a contact holds (PostgreSQL refuses a longer one, and would fail the batch).
MAX_LENGTHS = {
    name: cast(int, cast(CharField[str, str], Contact._meta.get_field(name)).max_length)
    for name in CORE_FIELDS
    if name != "mobile"
}
# Normalised header -> target; a header not listed becomes a custom field of the same name.
SYNONYMS = {
    "firstname": "first_name",
    "first": "first_name",
    "givenname": "first_name",
    "forename": "first_name",
    "lastname": "last_name",
    "last": "last_name",
    "surname": "last_name",
    "familyname": "last_name",
    "email": "email",
    "emailaddress": "email",
    "mail": "email",
    "mobile": "mobile",
    "mobilenumber": "mobile",
    "mobilephone": "mobile",
    "phone": "mobile",
    "phonenumber": "mobile",
    "cell": "mobile",
    "cellphone": "mobile",
    "msisdn": "mobile",
    "sms": "mobile",
    "country": "country",
    "countrycode": "country",
    "timezone": "timezone",
    "tz": "timezone",
    "language": "preferred_language",
    "preferredlanguage": "preferred_language",
    "lang": "preferred_language",
    "locale": "preferred_language",
    "dnc": "dnc",
    "donotcontact": "dnc",
    "smsdnc": "dnc",
    "optout": "dnc",
    "optedout": "dnc",
    "unsubscribed": "dnc",
    "smsconsent": "sms_consent",
    "consent": "sms_consent",
    "marketingconsent": "sms_consent",
    "optin": "sms_consent",
    "smsconsentat": "sms_consent_at",
    "consentat": "sms_consent_at",
    "consentdate": "sms_consent_at",
    "consenttimestamp": "sms_consent_at",
    "smsconsentdate": "sms_consent_at",
}


class MappingError(ValueError):
    """The file or its mapping cannot be imported at all (no header, no mobile column, too wide): a form error."""


def _slug(header: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", header.lower())


def custom_key(header: str) -> str:
    """The custom field name a header becomes: lower case, underscores, starting with a letter."""
    key = re.sub(r"[^A-Za-z0-9]+", "_", header.strip()).strip("_").lower()
    key = re.sub(r"_+", "_", key)
    return key if key and key[0].isalpha() else f"field_{key}".rstrip("_")


_custom_key = custom_key  # the name contacts.forms imports


def auto_mapping(headers: list[str]) -> dict[str, str]:
    """Column index -> target guessed from the headers; each core target once, unknown headers as custom fields."""
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for index, header in enumerate(headers):
        slug = _slug(header)
        target = SYNONYMS.get(slug, "")
        if not target and slug:
            key = custom_key(header)
            target = f"custom_date.{key}" if "date" in slug or slug.endswith("birthday") else f"custom.{key}"
        if target in used:
            target = ""
        used.add(target)
        mapping[str(index)] = target
    return mapping


def mapping_clean(mapping: dict[str, str], headers: list[str]) -> dict[str, str]:
    """Check a (possibly edited) mapping: known targets, each used once, exactly one mobile column."""
    cleaned: dict[str, str] = {}
    seen: dict[str, str] = {}
    for index, _header in enumerate(headers):
        target = (mapping.get(str(index)) or "").strip()
        if target.startswith(("custom.", "custom_date.")):
            key = target.split(".", 1)[1]
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,62}", key) or "__" in key:
                raise MappingError(f"Column “{headers[index]}”: “{key}” is not a valid custom field name.")
        elif target and target not in TARGET_LABELS:
            raise MappingError(f"Column “{headers[index]}”: unknown field “{target}”.")
        if target and target in seen:
            raise MappingError(f"Columns “{seen[target]}” and “{headers[index]}” both map to {target}.")
        if target:
            seen[target] = headers[index]
        cleaned[str(index)] = target
    if "mobile" not in seen:
        raise MappingError("Map one column to the mobile number: contacts are matched by it.")
    return cleaned
