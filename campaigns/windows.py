"""When an event may fire: its trigger (immediately, after an interval, at a date) and its hour/weekday window.

Windows are read in the contact's timezone (a blank or unknown one falls back to the site's ``TIME_ZONE``), so a
"9:00-17:00 on weekdays" action reaches a contact in Tokyo and one in London during their own office hours.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings

from .models import CampaignEvent, TriggerMode, interval_delta


@lru_cache(maxsize=512)
def zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name) if name else ZoneInfo(settings.TIME_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(settings.TIME_ZONE)


def _in_hours(t: dt.time, start: dt.time, end: dt.time) -> bool:
    if start <= end:
        return start <= t < end
    return t >= start or t < end  # an overnight window such as 22:00-06:00


def next_allowed(moment: dt.datetime, *, event: CampaignEvent, tz: str) -> dt.datetime:
    """The first instant at or after ``moment`` that falls inside the event's window (``moment`` if none)."""
    if not event.has_window:
        return moment
    zone = zone_of(tz)
    local = moment.astimezone(zone)
    start, end = event.window_start, event.window_end
    weekdays = set(event.weekdays or [])
    for offset in range(8):
        day = local.date() + dt.timedelta(days=offset)
        if weekdays and day.weekday() not in weekdays:
            continue
        if offset == 0:
            if start is None or end is None or _in_hours(local.time(), start, end):
                return moment
            if local.time() < start:
                return dt.datetime.combine(day, start, tzinfo=zone).astimezone(dt.UTC)
            continue
        opening = start if (start is not None and end is not None) else dt.time(0, 0)
        return dt.datetime.combine(day, opening, tzinfo=zone).astimezone(dt.UTC)
    return moment  # no weekday allowed at all: validation refuses that, so this is never reached in practice


def is_allowed(moment: dt.datetime, *, event: CampaignEvent, tz: str) -> bool:
    return next_allowed(moment, event=event, tz=tz) == moment


def trigger_at(*, event: CampaignEvent, now: dt.datetime, tz: str) -> dt.datetime:
    """When this event should fire for a contact who reached it at ``now``."""
    if event.trigger_mode == TriggerMode.INTERVAL and event.trigger_interval:
        base = now + interval_delta(event.trigger_interval, event.trigger_unit)
    elif event.trigger_mode == TriggerMode.DATE and event.trigger_date:
        base = max(now, event.trigger_date)
    else:
        base = now
    return next_allowed(base, event=event, tz=tz)
