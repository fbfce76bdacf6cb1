"""Quiet hours: marketing messages go out only inside a daily window in the contact's own timezone.

The window defaults to 08:00-21:00 (``SMS_QUIET_HOURS_START`` / ``SMS_QUIET_HOURS_END``, "HH:MM"). A window whose
end is before its start spans midnight. Times are computed with ``zoneinfo`` on wall-clock dates, so a window opening
is right on the days clocks change.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from django.conf import settings
from phonenumbers import timezone as phone_timezones

DEFAULT_START = "08:00"
DEFAULT_END = "21:00"


def _parse_hhmm(value: str | dt.time) -> dt.time:
    if isinstance(value, dt.time):
        return value
    hours, minutes = value.split(":")
    return dt.time(int(hours), int(minutes))


def window() -> tuple[dt.time, dt.time]:
    start = getattr(settings, "SMS_QUIET_HOURS_START", DEFAULT_START) or DEFAULT_START
    end = getattr(settings, "SMS_QUIET_HOURS_END", DEFAULT_END) or DEFAULT_END
    return _parse_hhmm(start), _parse_hhmm(end)


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def contact_zone(*, timezone_name: str = "", mobile: str = "", country: str = "") -> ZoneInfo:
    """The contact's timezone: their own, else the zone of their number (area code), else their country's main
    zone, else the server's ``TIME_ZONE``."""
    zone = _zone(timezone_name)
    if zone:
        return zone
    candidates: tuple[str, ...] = ()
    if mobile:
        try:
            parsed = phonenumbers.parse(mobile, None)
            candidates = phone_timezones.time_zones_for_number(parsed)
            country = country or phonenumbers.region_code_for_country_code(parsed.country_code or 0) or ""
        except phonenumbers.NumberParseException:
            candidates = ()
    if not [c for c in candidates if _zone(c)] and country:
        example = phonenumbers.example_number(country.upper())
        candidates = phone_timezones.time_zones_for_geographical_number(example) if example else ()
    for name in candidates:
        zone = _zone(name)
        if zone:
            return zone
    return ZoneInfo(settings.TIME_ZONE)


def _inside(local: dt.time, start: dt.time, end: dt.time) -> bool:
    if start <= end:
        return start <= local < end
    return local >= start or local < end  # the window spans midnight


def _opening(day: dt.date, start: dt.time, zone: ZoneInfo) -> dt.datetime:
    """The instant the window opens on ``day``. A wall time skipped by a spring-forward change maps to the first
    instant after the gap (fold=0 reads it with the offset before the change)."""
    return dt.datetime.combine(day, start, tzinfo=zone).astimezone(dt.UTC)


def next_allowed_send(
    *, now: dt.datetime, zone: ZoneInfo, start: dt.time | None = None, end: dt.time | None = None
) -> dt.datetime:
    """``now`` when it falls inside the window in ``zone``, else the next opening of the window (aware, UTC)."""
    if start is None or end is None:
        start, end = window()
    local = now.astimezone(zone)
    if _inside(local.time(), start, end):
        return now
    day = local.date() if local.time() < start else local.date() + dt.timedelta(days=1)
    return _opening(day, start, zone)
