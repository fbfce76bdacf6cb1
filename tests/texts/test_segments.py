"""Segment counting against the carriers' published rules (GSM 03.38, 3GPP 23.040, Twilio's segment calculator)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from providers.segments import Encoding, count_segments, is_gsm7, validate_length

EMOJI = "\U0001f600"  # 😀, outside the BMP: two UTF-16 code units

# (body, encoding, units, segments, remaining)
CASES: list[tuple[str, str, int, int, int]] = [
    ("", Encoding.GSM7, 0, 0, 160),
    ("Hello there", Encoding.GSM7, 11, 1, 149),
    ("a" * 160, Encoding.GSM7, 160, 1, 0),
    ("a" * 161, Encoding.GSM7, 161, 2, 153 * 2 - 161),
    ("a" * 306, Encoding.GSM7, 306, 2, 0),
    ("a" * 307, Encoding.GSM7, 307, 3, 152),
    # Extension characters cost two septets each.
    ("€" * 80, Encoding.GSM7, 160, 1, 0),
    ("€" * 81, Encoding.GSM7, 162, 2, 153 - 10),  # 76 € fill 152 septets of part one; 5 go to part two
    ("{" * 80, Encoding.GSM7, 160, 1, 0),
    ("^" + "a" * 158, Encoding.GSM7, 160, 1, 0),
    ("^" + "a" * 159, Encoding.GSM7, 161, 2, 153 * 2 - 161),
    ("\f", Encoding.GSM7, 2, 1, 158),
    # An escape sequence is never split: the "{" moves whole to part two, so this needs three parts, not two.
    ("a" * 152 + "{" + "a" * 152, Encoding.GSM7, 306, 3, 152),
    # Basic-set accents stay GSM-7; others force UCS-2.
    ("Ça coûte 5€ à Zürich", Encoding.UCS2, 20, 1, 50),  # û is not in GSM 03.38
    ("Ça va à Zürich, 5€", Encoding.GSM7, 19, 1, 141),
    ("It\u2019s here", Encoding.UCS2, 9, 1, 61),  # a curly apostrophe
    ("a" * 70 + "ж", Encoding.UCS2, 71, 2, 67 * 2 - 71),
    ("ж" * 70, Encoding.UCS2, 70, 1, 0),
    ("ж" * 134, Encoding.UCS2, 134, 2, 0),
    ("ж" * 135, Encoding.UCS2, 135, 3, 66),
    # An emoji costs two code units.
    (EMOJI, Encoding.UCS2, 2, 1, 68),
    (EMOJI * 35, Encoding.UCS2, 70, 1, 0),
    (EMOJI * 36, Encoding.UCS2, 72, 2, 61),  # 33 emoji (66 units) fill part one: a pair never splits
    # A surrogate pair is never split across parts.
    ("ж" * 66 + EMOJI + "ж" * 66, Encoding.UCS2, 134, 3, 66),
    # The longest body Twilio accepts.
    ("a" * 1600, Encoding.GSM7, 1600, 11, 153 * 11 - 1600),
]


@pytest.mark.parametrize(("body", "encoding", "units", "segments", "remaining"), CASES)
def test_count_segments_matches_carrier_rules(
    body: str, encoding: str, units: int, segments: int, remaining: int
) -> None:
    info = count_segments(body)
    assert (info.encoding, info.units, info.segments, info.remaining) == (encoding, units, segments, remaining)
    assert info.characters == len(body)


def test_emoji_counts_one_character_but_two_units() -> None:
    info = count_segments(f"Hi {EMOJI}")
    assert info.characters == 4
    assert info.units == 5


def test_gsm7_detection() -> None:
    assert is_gsm7("@£$¥ Hello ÄÖÑÜ §¿ {}[]~|^€\\")
    assert not is_gsm7("Hello 😀")
    assert not is_gsm7("“quoted”")


def test_body_of_1600_characters_is_accepted_and_1601_refused() -> None:
    validate_length("a" * 1600)
    with pytest.raises(ValueError, match="1,601 characters"):
        validate_length("a" * 1601)
    assert count_segments("a" * 1601).too_long
    assert not count_segments("a" * 1600).too_long


@pytest.mark.browser
def test_javascript_counter_agrees_with_python(page: Any) -> None:
    script = Path(__file__).resolve().parents[2] / "static" / "js" / "sms-counter.js"
    page.set_content("<!doctype html><html><body></body></html>")
    page.add_script_tag(path=str(script))
    bodies = [case[0] for case in CASES] + ["a" * 1601, "Hi {{first_name|there}} 😀 ok"]
    results = page.evaluate("bodies => bodies.map(b => SmsCounter.count(b))", bodies)
    for body, js in zip(bodies, results, strict=True):
        py = count_segments(body)
        assert (js["encoding"], js["characters"], js["units"], js["segments"], js["remaining"], js["too_long"]) == (
            py.encoding,
            py.characters,
            py.units,
            py.segments,
            py.remaining,
            py.too_long,
        ), body[:40]
