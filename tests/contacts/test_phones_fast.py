"""The import's quick number path agrees with ``phonenumbers`` (through ``contacts.phones``) on the library's own
published example numbers of every region, in every format people type, valid and invalid alike."""

from __future__ import annotations

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from contacts.phones import InvalidPhoneNumber, mobile_with_location
from contacts.phones_fast import quick_mobile_with_location, quick_mobiles_with_location, quick_parse

_TYPES = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.VOIP, PhoneNumberType.TOLL_FREE)


def _cells() -> list[tuple[str, str]]:
    """Each region's example numbers written in E.164, international, national and bare-digit form, with "00",
    with a digit more and a digit less, with the country code and no "+", read in their region and in others."""
    cells: list[tuple[str, str]] = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in _TYPES:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            for fmt in (PhoneNumberFormat.E164, PhoneNumberFormat.INTERNATIONAL, PhoneNumberFormat.NATIONAL):
                text = phonenumbers.format_number(example, fmt)
                cells += [(text, region), (text, "US"), (text, "FR"), (text.replace("+", "00"), region)]
                cells.append((text.replace(" ", "-"), region))
            digits = phonenumbers.national_significant_number(example)
            cells += [(digits, region), (digits + "1", region), (digits[:-1], region)]
            cells.append((f"{example.country_code}{digits}", region))
        invalid = phonenumbers.invalid_example_number(region)
        if invalid is not None:
            cells += [(phonenumbers.format_number(invalid, PhoneNumberFormat.E164), region)]
            cells += [(phonenumbers.national_significant_number(invalid), region)]
    return cells


def _answer(function: object, raw: str, region: str) -> object:
    try:
        return function(raw, region=region)  # type: ignore[operator]
    except InvalidPhoneNumber as exc:
        return f"refused: {exc}"


def test_quick_path_agrees_with_phonenumbers_on_every_regions_published_examples() -> None:
    cells = _cells()
    differ = [
        (raw, region, _answer(mobile_with_location, raw, region), _answer(quick_mobile_with_location, raw, region))
        for raw, region in cells
        if _answer(mobile_with_location, raw, region) != _answer(quick_mobile_with_location, raw, region)
    ]
    assert differ == []
    # The comparison means something only if most cells went the quick way, valid and refused ones both.
    quick = [(raw, region) for raw, region in cells if quick_parse(raw, region) is not None]
    assert len(quick) > 0.7 * len(cells)
    answers = [_answer(quick_mobile_with_location, raw, region) for raw, region in quick]
    assert sum(isinstance(a, tuple) for a in answers) > 1000
    assert sum(isinstance(a, str) for a in answers) > 1000


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("06 12 34 56 78", "FR"),
        ("+33612345678", None),
        ("0033 6 12 34 56 78", "GB"),
        ("07911 123456", "GB"),
        ("0151-23456789", "DE"),
        ("201.555.0123", "US"),
        ("98765 43210", "IN"),
        ("+1 212 555 0123", None),
    ],
)
def test_quick_parse_builds_the_number_parse_builds(raw: str, region: str | None) -> None:
    parsed = quick_parse(raw, region)
    assert parsed is not None
    assert parsed == phonenumbers.parse(raw.replace("0033", "+33"), region)


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("+44 (0) 7911-123-456", None),  # parentheses: parse's own handling
        ("07911 123456 ext. 12", "GB"),  # an extension
        ("0800-FLOWERS", "US"),  # letters
        ("011 44 7911 123456", "US"),  # an international call prefix in a national number
        ("33612345678", "FR"),  # the country code without "+"
        ("06 1234 5678", "IT"),  # Italy keeps the leading zero: never quick when one is left
        ("612345678", None),  # no region for a national number
        ("06  12", "FR"),  # two separators in a row
    ],
)
def test_quick_parse_leaves_every_other_shape_to_phonenumbers(raw: str, region: str | None) -> None:
    assert quick_parse(raw, region) is None


def test_refused_numbers_keep_the_librarys_reason() -> None:
    results = quick_mobiles_with_location([("01 42 68 53 00", "FR"), ("not-a-number", "FR"), ("06 12 34 56 78", "FR")])
    assert results[0] == "“01 42 68 53 00” is not a mobile number and cannot receive text messages."
    assert results[1].startswith("“not-a-number” is not a phone number")
    assert results[2] == ("+33612345678", "FR", "Europe/Paris")
