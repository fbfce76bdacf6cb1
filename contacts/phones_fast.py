"""The import's phone numbers without ``phonenumbers.parse``'s generic text handling: the same answers, about half
the cost per number.

``phonenumbers.parse`` spends most of its time on what an import's cells almost never have: letters, extensions,
``tel:`` URIs, Unicode digits, punctuation of every script. A cell that is plain ASCII digits with single spaces,
dashes or dots between them (and an optional leading ``+`` or ``00``) needs none of it, so ``quick_parse`` builds
the ``PhoneNumber`` from the digits and the region's metadata by calling the library's own steps for the parts
that depend on the country (the national prefix, the possible lengths) and gives up (returns None) on every case
where ``parse`` does something it does not copy: an international call prefix or the country code written without
``+`` in a national number, a leading zero kept in the national number (Italy), lengths out of range.

Whatever ``quick_parse`` gives up on, and every number that is not a valid mobile, goes to
``contacts.phones.mobile_with_location`` itself (which gives the reason for a refusal), so an error message never
differs. The validity and type check is always the library's ``number_type``. Kept outside ``contacts.importer``
(which imports the models) so that a fresh parsing process can import it without Django being set up.
``tests/contacts/test_phones_fast.py`` compares both with published example numbers of many countries.
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumber, PhoneNumberType
from phonenumbers import phonenumberutil as util
from phonenumbers import timezone as phone_timezone

from .phones import InvalidPhoneNumber, _time_zones, mobile_with_location

# Digits in groups separated by one space, dash or dot; an optional leading "+" (or "00", read as "+").
_SIMPLE = re.compile(r"\+?[0-9]+(?:[ .\-][0-9]+)*")
_SEPARATORS = str.maketrans("", "", " .-")
_TEXTABLE = {
    PhoneNumberType.MOBILE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE,
    PhoneNumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER,
}
# Per region: (metadata, its country code as text, its international call prefix pattern or None).
_REGIONS: dict[str, tuple[PhoneMetadata, str, re.Pattern[str] | None]] = {}


def _region(region: str) -> tuple[PhoneMetadata, str, re.Pattern[str] | None] | None:
    if region not in _REGIONS:
        metadata = PhoneMetadata.metadata_for_region(region, None)
        if metadata is None:
            return None
        idd = metadata.international_prefix
        _REGIONS[region] = (metadata, str(metadata.country_code), re.compile(idd) if idd else None)
    return _REGIONS[region]


def quick_parse(raw: str, region: str | None) -> PhoneNumber | None:
    """``phonenumbers.parse(raw, region)`` for a plain cell (see the module), or None to say "use parse"."""
    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]  # what contacts.phones does before parsing
    if len(text) > 24 or not _SIMPLE.fullmatch(text):
        return None
    digits = text.translate(_SEPARATORS)
    if digits[0] == "+":
        digits = digits[1:]
        if len(digits) <= 2 or digits[0] == "0":
            return None
        for size in (1, 2, 3):  # calling codes are prefix-free: the first known prefix is the code
            code = int(digits[:size])
            if code in util.COUNTRY_CODE_TO_REGION_CODE:
                break
        else:
            return None
        number_region = util.region_code_for_country_code(code)
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, number_region)
        if metadata is None:
            return None
        national = digits[size:]
    else:
        known = _region(region) if region else None
        if known is None:
            return None
        metadata, code_text, idd = known
        if (idd is not None and idd.match(digits)) or digits.startswith(code_text) or metadata.country_code is None:
            return None  # parse may read these as international: leave them to it
        code, national = metadata.country_code, digits
    if len(national) < util._MIN_LENGTH_FOR_NSN:
        return None
    _, stripped, _ = util._maybe_strip_national_prefix_carrier_code(national, metadata)
    if util._test_number_length(stripped, metadata) not in (
        util.ValidationResult.TOO_SHORT,
        util.ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
        util.ValidationResult.INVALID_LENGTH,
    ):
        national = stripped
    if not util._MIN_LENGTH_FOR_NSN <= len(national) <= util._MAX_LENGTH_FOR_NSN or national[0] == "0":
        return None
    return PhoneNumber(country_code=code, national_number=int(national))


def quick_mobile_with_location(raw: str, *, region: str | None) -> tuple[str, str, str]:
    """``contacts.phones.mobile_with_location`` (same results, same errors), through ``quick_parse`` when it can.

    ``region`` must be resolved (the default region applied), as for ``mobiles_with_location``."""
    upper = region.upper() if region else None
    parsed = quick_parse(raw, upper) if upper is None or upper in phonenumbers.SUPPORTED_REGIONS else None
    if parsed is None:
        return mobile_with_location(raw, region=region)
    kind = phonenumbers.number_type(parsed)
    if kind not in _TEXTABLE:
        return mobile_with_location(raw, region=region)  # the library's path words the refusal
    zones = [z for z in _time_zones(parsed, kind) if z != phone_timezone.UNKNOWN_TIMEZONE]
    return (
        f"+{parsed.country_code}{parsed.national_number}",
        phonenumbers.region_code_for_number(parsed) or "",
        zones[0] if len(zones) == 1 else "",
    )


def quick_mobiles_with_location(cells: list[tuple[str, str | None]]) -> list[tuple[str, str, str] | str]:
    """``quick_mobile_with_location`` for many cells: each result, or the message of why it is invalid (what an
    import's parsing processes run)."""
    results: list[tuple[str, str, str] | str] = []
    for raw, region in cells:
        try:
            results.append(quick_mobile_with_location(raw, region=region))
        except InvalidPhoneNumber as exc:
            results.append(str(exc))
    return results
