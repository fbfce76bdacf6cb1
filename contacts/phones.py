"""Phone numbers: parse what people type into E.164 with ``phonenumbers``, never assuming a country in code."""

from __future__ import annotations

import phonenumbers
from django.conf import settings
from phonenumbers import timezone as phone_timezone


class InvalidPhoneNumber(ValueError):
    """A number that cannot be a mobile number we can text; the message names the input and why."""


def country_is_known(code: str) -> bool:
    """Whether ``code`` is an ISO 3166-1 alpha-2 country with phone numbers ("ZZ", "unknown region", is not)."""
    return code.upper() in phonenumbers.SUPPORTED_REGIONS


def unknown_country_message(code: str) -> str:
    return f"“{code}” is not a country code: use the two-letter ISO code, e.g. GB, FR, US."


def phone_to_e164(raw: str, *, region: str | None = None) -> str:
    """``raw`` in E.164, or ``InvalidPhoneNumber`` saying why it cannot be texted (see ``parse_mobile``)."""
    return phonenumbers.format_number(parse_mobile(raw, region=region), phonenumbers.PhoneNumberFormat.E164)


def parse_mobile(raw: str, *, region: str | None = None) -> phonenumbers.PhoneNumber:
    """Parse ``raw`` (national or international format, spaces, dashes, parentheses, 00 prefix), checked mobile.

    ``region`` is the contact's ISO country (falls back to ``DEFAULT_PHONE_REGION``); it only matters for numbers
    written without a country code.
    """
    return parse_mobile_typed(raw, region=region)[0]


def parse_mobile_typed(raw: str, *, region: str | None = None) -> tuple[phonenumbers.PhoneNumber, int]:
    """``parse_mobile`` and the number's ``PhoneNumberType``, matched once.

    ``is_valid_number`` is "the number has a type" (it runs the same type match and compares it with UNKNOWN), and
    the time zone lookup needs the type too: asking for the type once instead of three times is a third of the
    import's cost per row, with exactly the same answers (tests/contacts/test_phones.py compares them).
    """
    text = (raw or "").strip()
    if not text:
        raise InvalidPhoneNumber("The number is empty.")
    region = (region or settings.DEFAULT_PHONE_REGION or "").upper() or None
    if region is not None and not country_is_known(region):
        raise InvalidPhoneNumber(unknown_country_message(region))
    if text.startswith("00"):
        # The international call prefix used in most of the world; phonenumbers only knows it per region.
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"“{raw}” is not a phone number ({exc._msg}).") from None
    kind = phonenumbers.number_type(parsed)
    if kind == phonenumbers.PhoneNumberType.UNKNOWN:  # what is_valid_number(parsed) is False for
        where = phonenumbers.region_code_for_country_code(parsed.country_code or 0)
        raise InvalidPhoneNumber(
            f"“{raw}” is not a valid phone number for {where if where != 'ZZ' else 'any country'}."
        )
    if parsed.extension:
        # E.164 has no extension and no text message reaches one: refuse, rather than drop it without a word.
        raise InvalidPhoneNumber(
            f"“{raw}” has an extension (ext. {parsed.extension}); a text message cannot reach an extension: "
            "give the mobile number alone."
        )
    if kind not in {
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
        phonenumbers.PhoneNumberType.VOIP,
        phonenumbers.PhoneNumberType.PERSONAL_NUMBER,
    }:
        raise InvalidPhoneNumber(f"“{raw}” is not a mobile number and cannot receive text messages.")
    return parsed, kind


# Country calling code -> the time zones of its numbers that are not geographical (most mobiles): phonenumbers
# answers those from the country code alone.
_COUNTRY_ZONES: dict[int, tuple[str, ...]] = {}


def _time_zones(parsed: phonenumbers.PhoneNumber, kind: int) -> tuple[str, ...]:
    """``time_zones_for_number(parsed)`` for a number whose type is known (that function matches the type again)."""
    code = parsed.country_code or 0
    if phonenumbers.is_number_type_geographical(kind, code):
        return tuple(phone_timezone.time_zones_for_geographical_number(parsed))
    if code not in _COUNTRY_ZONES:
        _COUNTRY_ZONES[code] = tuple(phone_timezone.time_zones_for_number(parsed))
    return _COUNTRY_ZONES[code]


def mobile_with_location(raw: str, *, region: str | None = None) -> tuple[str, str, str]:
    """(E.164, country, timezone) from one parse and one type match: the import's hot path, where each costs."""
    parsed, kind = parse_mobile_typed(raw, region=region)
    zones = [z for z in _time_zones(parsed, kind) if z != phone_timezone.UNKNOWN_TIMEZONE]
    return (
        phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164),
        phonenumbers.region_code_for_number(parsed) or "",
        zones[0] if len(zones) == 1 else "",
    )


def mobiles_with_location(cells: list[tuple[str, str | None]]) -> list[tuple[str, str, str] | str]:
    """``mobile_with_location`` for many (raw, region) cells: each result, or the message of why it is invalid.

    What an import's parsing processes run (this module imports no models, so a fresh process can load it). Pass
    the region resolved (the default region already applied): a fresh process has no settings of its own to read.
    """
    results: list[tuple[str, str, str] | str] = []
    for raw, region in cells:
        try:
            results.append(mobile_with_location(raw, region=region))
        except InvalidPhoneNumber as exc:
            results.append(str(exc))
    return results


def region_of(e164: str) -> str:
    """The ISO country of an E.164 number ("" when unknown)."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(e164, None)) or ""
    except phonenumbers.NumberParseException:
        return ""


def timezone_of(e164: str) -> str:
    """The IANA time zone of an E.164 number when the number pins down exactly one ("" otherwise).

    A country spanning several zones (a US mobile, a Russian one) gives several candidates: guessing one would send
    at the wrong hour, so the contact's timezone stays blank and the sender falls back to its default.
    """
    try:
        zones = phone_timezone.time_zones_for_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return ""
    known = [zone for zone in zones if zone != phone_timezone.UNKNOWN_TIMEZONE]
    return known[0] if len(known) == 1 else ""


def looks_like_phone(text: str) -> bool:
    """Whether a search query is a phone number rather than a name (mostly digits, at least 6 of them)."""
    digits = sum(ch.isdigit() for ch in text)
    return digits >= 6 and all(ch.isdigit() or ch in "+-() ./" for ch in text.strip())
