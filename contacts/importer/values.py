"""One record's values checked and normalised, as the file streams: the same rules, reasons and order for the
PostgreSQL and the SQLite path.

These checks are Python's own (Django's email validator, ``date.fromisoformat``, ``phonenumbers``), so they run here
rather than as SQL copies that could disagree at the edges; what compares rows with each other or with the contacts
table (duplicates, existing contacts) is set-based SQL in ``copy.py``. Each distinct number and date is parsed once
per import: files repeat them (a re-import, a column of sign-up dates), and parsing is what a row costs.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from concurrent.futures import Executor
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from ..phones import InvalidPhoneNumber
from ..phones_fast import quick_mobile_with_location, quick_mobiles_with_location
from .mapping import MAX_LENGTHS, TARGET_LABELS
from .reading import Record

TRUE_WORDS = {"yes", "y", "true", "1", "x", "dnc", "unsubscribed", "opted out"}
FALSE_WORDS = {"", "no", "n", "false", "0"}
CONSENT_YES = {"yes", "y", "true", "1", "x", "subscribed", "opted in"}
CONSENT_NO = {"no", "n", "false", "0", "unsubscribed", "opted out"}
_ZONES = zoneinfo.available_timezones()
# A strict subset of what Django's validate_email accepts (plain ASCII dot-atoms at host names), tested against it:
# almost every address passes this one match, and only the others are handed to the validator.
PLAIN_EMAIL = re.compile(
    r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)
_CACHE_LIMIT = 50_000  # entries per cache: a bound on memory; repeats are mostly near each other in a file
_LENGTH_CHECKED = [name for name in ("first_name", "last_name", "email", "preferred_language") if name in MAX_LENGTHS]


class RowError(ValueError):
    """Why one row cannot be imported (the message is shown with its row number)."""


@dataclass(slots=True)
class Row:
    """A row that passed every check: the values it gives (only non-empty ones) and what its number tells."""

    number: int
    mobile: str
    values: dict[str, str]
    custom: dict[str, str] = field(default_factory=dict)
    dnc: bool = False
    inferred_country: str = ""
    inferred_timezone: str = ""
    consent: bool | None = None  # the sms_consent column: None when the row gives no decision
    consent_at: str = ""  # ISO 8601 with its offset (UTC when the file gave none)


def _consent(cell: str) -> bool:
    word = cell.lower()
    if word not in CONSENT_YES and word not in CONSENT_NO:
        raise RowError(f"SMS consent must be yes or no, not “{cell}”")
    return word in CONSENT_YES


def _consent_at(cell: str) -> str:
    """A consent timestamp as ISO 8601 with an offset; a date alone is midnight UTC, a naive time is UTC."""
    try:
        when = parse_datetime(cell)
        if when is None:
            day = parse_date(cell.replace("/", "-"))
            when = dt.datetime(day.year, day.month, day.day) if day else None
    except ValueError:  # well formed but no such day (2024-02-31)
        when = None
    if when is None:
        raise RowError(f"bad consent date “{cell}” (use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM])")
    when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    if when > timezone.now() + dt.timedelta(days=1):
        raise RowError(f"consent date “{cell}” is in the future")
    return when.isoformat()


class RowParser:
    """Checks records against a (clean) mapping; ``parse`` returns a ``Row`` or raises ``RowError``."""

    def __init__(self, *, headers: list[str], mapping: dict[str, str], region: str | None) -> None:
        self.headers = headers
        self.region = region
        # (column, target) in file order: the order in which a row's values are checked and its fields listed.
        self.plan = [(int(index), target) for index, target in sorted(mapping.items(), key=lambda i: int(i[0]))]
        self.plan = [(index, target) for index, target in self.plan if target]
        self.has_dnc = any(target == "dnc" for _, target in self.plan)
        self.has_consent = any(target == "sms_consent" for _, target in self.plan)
        targets = {target: index for index, target in self.plan}
        self._mobile_column, self._country_column = targets.get("mobile"), targets.get("country")
        self._phones: dict[tuple[str, str | None], tuple[str, str, str] | str] = {}
        self._dates: dict[str, str | None] = {}

    def parse(self, number: int, cells: list[str]) -> Row:
        values: dict[str, str] = {}
        custom: dict[str, str] = {}
        dnc = False
        consent: bool | None = None
        consent_at = ""
        for index, target in self.plan:
            cell = cells[index].strip()
            if not cell and target != "mobile":
                continue
            if target.startswith("custom."):
                custom[target[7:]] = cell
            elif target.startswith("custom_date."):
                custom[target[12:]] = self._date(cell, index)
            elif target == "dnc":
                word = cell.lower()
                if word not in TRUE_WORDS and word not in FALSE_WORDS:
                    raise RowError(f"Do Not Contact must be yes or no, not “{cell}”")
                dnc = word in TRUE_WORDS
            elif target == "sms_consent":
                consent = _consent(cell)
            elif target == "sms_consent_at":
                consent_at = _consent_at(cell)
            else:
                values[target] = cell
        self._check_values(values)
        raw_mobile = values.pop("mobile", "")
        if not raw_mobile:
            raise RowError("no mobile number")
        mobile, country, zone = self._mobile(raw_mobile, values.get("country") or self.region)
        return Row(
            number, mobile, values, custom, dnc, country, zone, consent, consent_at if consent is not None else ""
        )

    def _check_values(self, values: dict[str, str]) -> None:
        if "email" in values:
            email = values["email"]
            if not (len(email) <= 320 and PLAIN_EMAIL.fullmatch(email)):
                try:
                    validate_email(email)
                except ValidationError:
                    raise RowError(f"invalid email “{email}”") from None
        if "country" in values:
            values["country"] = values["country"].upper()
            if not re.fullmatch(r"[A-Z]{2}", values["country"]):
                raise RowError(f"country “{values['country']}” is not a two-letter ISO code")
        if "timezone" in values and values["timezone"] not in _ZONES:
            raise RowError(f"unknown timezone “{values['timezone']}”")
        for name in _LENGTH_CHECKED:
            if name in values and len(values[name]) > MAX_LENGTHS[name]:
                raise RowError(f"{TARGET_LABELS[name]} is longer than {MAX_LENGTHS[name]} characters")

    def _date(self, cell: str, index: int) -> str:
        if cell not in self._dates:
            if len(self._dates) >= _CACHE_LIMIT:
                self._dates.clear()
            try:
                self._dates[cell] = dt.date.fromisoformat(cell.replace("/", "-")).isoformat()
            except ValueError:
                self._dates[cell] = None
        value = self._dates[cell]
        if value is None:
            raise RowError(f"bad date “{cell}” in column “{self.headers[index]}” (use YYYY-MM-DD)")
        return value

    def _phone_key(self, raw: str, region: str | None) -> tuple[str, str | None]:
        return (raw, None if raw.startswith(("+", "00")) else region)

    def prime(self, records: list[Record], pool: Executor, *, processes: int) -> None:
        """Parse the distinct numbers of these records that are not cached yet in ``processes`` other processes, so
        that ``parse`` finds them cached: parsing numbers is most of what a row costs, and one process parses
        about 50,000 a second (``contacts.phones_fast``; 25,000 through ``phonenumbers.parse``). The same function,
        on the same cells, with the same region as ``parse`` would use."""
        if self._mobile_column is None:
            return
        default = settings.DEFAULT_PHONE_REGION
        missing: dict[tuple[str, str | None], str | None] = {}
        for record in records:
            if record.error:
                continue
            raw = record.cells[self._mobile_column].strip()
            country = record.cells[self._country_column].strip().upper() if self._country_column is not None else ""
            region = country or self.region
            key = self._phone_key(raw, region)
            if raw and key not in self._phones:
                missing[key] = region or default
        if not missing:
            return
        if len(self._phones) + len(missing) > _CACHE_LIMIT:
            self._phones.clear()
        cells = [(raw, region) for (raw, _), region in missing.items()]
        size = max(1, len(cells) // (processes * 4))
        parts = [cells[start : start + size] for start in range(0, len(cells), size)]
        results = [result for part in pool.map(quick_mobiles_with_location, parts) for result in part]
        self._phones.update(zip(missing, results, strict=True))

    def _mobile(self, raw: str, region: str | None) -> tuple[str, str, str]:
        """(E.164, country, timezone) of a cell, parsed once per distinct cell and region.

        A number written with its country code (``+``, or ``00``) reads the same in every region, so it is cached
        without one: a file whose rows have many countries still parses each such number once.
        """
        key = self._phone_key(raw, region)
        result = self._phones.get(key)
        if result is None:
            if len(self._phones) >= _CACHE_LIMIT:
                self._phones.clear()
            try:
                result = quick_mobile_with_location(raw, region=region or settings.DEFAULT_PHONE_REGION or None)
            except InvalidPhoneNumber as exc:
                result = str(exc)
            self._phones[key] = result
        if isinstance(result, str):
            raise RowError(f"invalid mobile number: {result}")
        return result
