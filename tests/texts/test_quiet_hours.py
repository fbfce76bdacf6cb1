from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.test import override_settings

from texts.quiet_hours import contact_zone, next_allowed_send

UTC = dt.UTC
NY = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
SYDNEY = ZoneInfo("Australia/Sydney")


def local(zone: ZoneInfo, *args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=zone)  # type: ignore[misc]


def test_inside_window_sends_now() -> None:
    now = local(LONDON, 2026, 3, 10, 12, 0).astimezone(UTC)
    assert next_allowed_send(now=now, zone=LONDON) == now


def test_before_opening_defers_to_opening_same_day() -> None:
    now = local(NY, 2026, 3, 10, 6, 30).astimezone(UTC)
    assert next_allowed_send(now=now, zone=NY) == local(NY, 2026, 3, 10, 8, 0)


def test_after_closing_defers_to_next_morning() -> None:
    now = local(NY, 2026, 3, 10, 21, 0).astimezone(UTC)  # the end is exclusive
    assert next_allowed_send(now=now, zone=NY) == local(NY, 2026, 3, 11, 8, 0)


def test_same_instant_differs_by_timezone() -> None:
    now = dt.datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # 13:00 London, 08:00 New York, 22:00 Sydney
    assert next_allowed_send(now=now, zone=LONDON) == now
    assert next_allowed_send(now=now, zone=NY) == now
    assert next_allowed_send(now=now, zone=SYDNEY) == local(SYDNEY, 2026, 6, 2, 8, 0)


def test_spring_forward_opening_is_local_eight() -> None:
    # US clocks go forward on 2026-03-08 at 02:00: the opening that day is 08:00 EDT = 12:00 UTC, not 13:00.
    now = local(NY, 2026, 3, 7, 22, 0).astimezone(UTC)
    opening = next_allowed_send(now=now, zone=NY)
    assert opening == dt.datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
    assert opening.astimezone(NY).hour == 8


def test_fall_back_opening_is_local_eight() -> None:
    # UK clocks go back on 2026-10-25: 08:00 GMT = 08:00 UTC (the day before it was 07:00 UTC).
    now = local(LONDON, 2026, 10, 24, 23, 30).astimezone(UTC)
    assert next_allowed_send(now=now, zone=LONDON) == dt.datetime(2026, 10, 25, 8, 0, tzinfo=UTC)


def test_opening_inside_a_dst_gap_moves_past_the_gap() -> None:
    # A window opening at 02:30 on the night US clocks skip 02:00-03:00: 02:30 does not exist that day.
    now = local(NY, 2026, 3, 8, 1, 0).astimezone(UTC)
    opening = next_allowed_send(now=now, zone=NY, start=dt.time(2, 30), end=dt.time(6, 0))
    assert opening.astimezone(NY) == local(NY, 2026, 3, 8, 3, 30)
    assert opening > now


def test_window_spanning_midnight() -> None:
    start, end = dt.time(20, 0), dt.time(2, 0)
    inside = local(LONDON, 2026, 5, 1, 1, 0).astimezone(UTC)
    assert next_allowed_send(now=inside, zone=LONDON, start=start, end=end) == inside
    outside = local(LONDON, 2026, 5, 1, 3, 0).astimezone(UTC)
    assert next_allowed_send(now=outside, zone=LONDON, start=start, end=end) == local(LONDON, 2026, 5, 1, 20, 0)


@override_settings(SMS_QUIET_HOURS_START="10:00", SMS_QUIET_HOURS_END="18:00")
def test_window_from_settings() -> None:
    now = local(LONDON, 2026, 5, 1, 9, 0).astimezone(UTC)
    assert next_allowed_send(now=now, zone=LONDON) == local(LONDON, 2026, 5, 1, 10, 0)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"timezone_name": "Asia/Tokyo", "mobile": "+14155550100"}, "Asia/Tokyo"),
        ({"mobile": "+14155552671"}, "America/Los_Angeles"),  # a San Francisco area code
        ({"mobile": "+447700900123"}, "Europe/London"),
        ({"country": "FR"}, "Europe/Paris"),
        ({"timezone_name": "Not/AZone"}, "UTC"),
        ({}, "UTC"),
    ],
)
def test_contact_zone_resolution(kwargs: dict[str, str], expected: str) -> None:
    assert contact_zone(**kwargs).key == expected
