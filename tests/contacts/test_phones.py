"""Numbers typed every way people type them, across countries; never a hard-coded US."""

from __future__ import annotations

import pytest
from django.test import override_settings

from contacts.models import Contact
from contacts.phones import InvalidPhoneNumber, looks_like_phone, phone_to_e164, region_of, timezone_of

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("07911 123456", "GB", "+447911123456"),
        ("+44 7911 123456", None, "+447911123456"),
        ("0044 7911 123456", None, "+447911123456"),
        ("+44 (0) 7911-123-456", None, "+447911123456"),
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("+33 6 12 34 56 78", "US", "+33612345678"),
        ("0151 23456789", "DE", "+4915123456789"),
        ("(201) 555-0123", "US", "+12015550123"),
        ("201.555.0123", "US", "+12015550123"),
        ("+1 201-555-0123", "GB", "+12015550123"),
        ("0412 345 678", "AU", "+61412345678"),
        ("98765 43210", "IN", "+919876543210"),
        ("  +61 412 345 678  ", None, "+61412345678"),
    ],
)
def test_parses_national_and_international_formats(raw: str, region: str | None, expected: str) -> None:
    assert phone_to_e164(raw, region=region) == expected


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("", "GB"),
        ("hello", "GB"),
        ("12345", "GB"),  # a short code: not a person's number
        ("911", "US"),
        ("+44 20 7946 0018", None),  # a London landline cannot receive texts
        ("+1 555", None),
        ("07911 12345678901", "GB"),
        ("0044", None),
    ],
)
def test_rejects_garbage_short_codes_and_landlines(raw: str, region: str | None) -> None:
    with pytest.raises(InvalidPhoneNumber) as excinfo:
        phone_to_e164(raw, region=region)
    assert str(excinfo.value)


@override_settings(DEFAULT_PHONE_REGION="GB")
def test_default_region_setting_is_used_for_national_numbers() -> None:
    assert phone_to_e164("07911 123456") == "+447911123456"


@override_settings(DEFAULT_PHONE_REGION="FR")
def test_default_region_is_not_us() -> None:
    # A French national number under a French default; under a US default it would be invalid.
    assert phone_to_e164("06 12 34 56 78") == "+33612345678"
    with pytest.raises(InvalidPhoneNumber):
        phone_to_e164("(201) 555-0123")


def test_contact_country_wins_over_default_region() -> None:
    with override_settings(DEFAULT_PHONE_REGION="US"):
        assert phone_to_e164("0412 345 678", region="au") == "+61412345678"


def test_region_and_timezone_inferred_from_number() -> None:
    assert region_of("+33612345678") == "FR"
    assert timezone_of("+33612345678") == "Europe/Paris"
    assert timezone_of("+12015550123") == "America/New_York"
    # Russia spans many zones: no guess.
    assert timezone_of("+79161234567") == ""
    assert region_of("not a number") == ""


def test_contact_infers_country_and_timezone_when_not_set() -> None:
    contact = Contact.objects.create(mobile="+4915123456789")
    contact.refresh_from_db()
    assert (contact.country, contact.timezone) == ("DE", "Europe/Berlin")
    kept = Contact.objects.create(mobile="+33612345678", country="FR", timezone="America/Martinique")
    kept.refresh_from_db()
    assert kept.timezone == "America/Martinique"


@pytest.mark.parametrize(
    ("text", "is_phone"),
    [("+44 7911 123456", True), ("(201) 555-0123", True), ("ada", False), ("ada@example.com", False), ("123", False)],
)
def test_search_query_recognised_as_phone(text: str, is_phone: bool) -> None:
    assert looks_like_phone(text) is is_phone


def _reference(raw: str, region: str | None) -> tuple[str, str, str] | str:
    """The import's answer for one cell as it was computed before the type was matched once: ``is_valid_number``,
    ``number_type`` and ``time_zones_for_number``, each doing its own type match."""
    import phonenumbers
    from django.conf import settings
    from phonenumbers import timezone as phone_timezone

    text = raw.strip()
    if not text:
        return "The number is empty."
    region = (region or settings.DEFAULT_PHONE_REGION or "").upper() or None
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        return f"“{raw}” is not a phone number ({exc._msg})."
    if not phonenumbers.is_valid_number(parsed):
        where = phonenumbers.region_code_for_country_code(parsed.country_code or 0)
        return f"“{raw}” is not a valid phone number for {where if where != 'ZZ' else 'any country'}."
    mobile_types = {
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
        phonenumbers.PhoneNumberType.VOIP,
        phonenumbers.PhoneNumberType.PERSONAL_NUMBER,
    }
    if phonenumbers.number_type(parsed) not in mobile_types:
        return f"“{raw}” is not a mobile number and cannot receive text messages."
    zones = [z for z in phone_timezone.time_zones_for_number(parsed) if z != phone_timezone.UNKNOWN_TIMEZONE]
    return (
        phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164),
        phonenumbers.region_code_for_number(parsed) or "",
        zones[0] if len(zones) == 1 else "",
    )


def _sample_inputs() -> list[tuple[str, str | None]]:
    """Every region's example number of every type, written three ways, plus near misses (a digit changed, one
    more, one fewer) and garbage: tens of thousands of cells, valid and not."""
    import phonenumbers

    formats = (
        phonenumbers.PhoneNumberFormat.E164,
        phonenumbers.PhoneNumberFormat.NATIONAL,
        phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    )
    cells: list[tuple[str, str | None]] = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in range(12):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            for fmt in formats:
                text = phonenumbers.format_number(example, fmt)
                digits = str(example.national_number)
                variants = [text, text[:-1], text + "7", text[:-1] + str((int(text[-1]) + 1) % 10)]
                variants += [f"00{example.country_code}{digits}", digits, "0" + digits]
                cells += [(variant, region) for variant in variants]
                cells.append((text, None))
    return [*cells, ("", "GB"), ("banana", "FR"), ("+", None), ("12345", "US"), ("+999 1234 5678", None)]


def test_the_import_parses_every_number_exactly_as_the_three_separate_checks_did() -> None:
    from contacts.phones import InvalidPhoneNumber, mobile_with_location

    cells = _sample_inputs()
    assert len(cells) > 10_000
    valid = 0
    for raw, region in cells:
        try:
            ours: tuple[str, str, str] | str = mobile_with_location(raw, region=region)
            valid += 1
        except InvalidPhoneNumber as exc:
            ours = str(exc)
        assert ours == _reference(raw, region), (raw, region)
    assert 1_000 < valid < len(cells)  # both outcomes are well represented
