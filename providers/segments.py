"""How carriers count a text message: GSM-7 or UCS-2, characters, segments.

It lives in the transport layer because everything that costs a message by segments uses it: the editor and the
sending pipeline (texts), the rate limiter and the local fake provider servers (providers).

The rules (GSM 03.38, 3GPP 23.040, as carriers and providers apply them):

- A body made only of the GSM 03.38 basic character set and its extension table is sent in GSM-7. Each basic
  character costs one septet; each extension character (``^ { } \\ [ ~ ] | €`` and form feed) costs two (an escape
  plus the character).
- Anything else (an emoji, a curly quote, Cyrillic...) switches the whole body to UCS-2, counted in UTF-16 code units,
  so a character outside the Basic Multilingual Plane (most emoji) costs two.
- One segment holds 160 septets or 70 code units. A longer body is split into parts that carry a 6-byte header, which
  leaves 153 septets or 67 code units each; a part never ends in the middle of an escape sequence or a surrogate
  pair, so such a character moves whole to the next part.

``static/js/sms-counter.js`` is a port of this module for the editor; ``tests/texts/test_segments.py`` runs the same
cases through both.
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

MAX_BODY_CHARACTERS = 1600
GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


class Encoding:
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True)
class SegmentInfo:
    encoding: str  # Encoding.GSM7 or Encoding.UCS2
    characters: int  # characters as a person counts them (Unicode code points)
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2): what the carrier bills
    segments: int
    per_segment: int  # capacity of one segment at this length: 160/153 or 70/67
    remaining: int  # units still free in the last segment

    @property
    def too_long(self) -> bool:
        return self.characters > MAX_BODY_CHARACTERS


def is_gsm7(body: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in body)


def _unit_costs(body: str) -> tuple[str, list[int]]:
    """The encoding and the cost of each character in units of that encoding."""
    if is_gsm7(body):
        return Encoding.GSM7, [2 if ch in GSM7_EXTENSION else 1 for ch in body]
    return Encoding.UCS2, [2 if ord(ch) > 0xFFFF else 1 for ch in body]


def _pack(costs: list[int], capacity: int) -> tuple[int, int]:
    """Fill parts of ``capacity`` units without splitting a character; returns (parts, units used in the last)."""
    parts, used = 1, 0
    for cost in costs:
        if used + cost > capacity:
            parts += 1
            used = 0
        used += cost
    return parts, used


def count_segments(body: str) -> SegmentInfo:
    """Encoding, characters, billed units, segments and units left in the last segment of ``body``."""
    encoding, costs = _unit_costs(body)
    units = sum(costs)
    single, part = (GSM7_SINGLE, GSM7_PART) if encoding == Encoding.GSM7 else (UCS2_SINGLE, UCS2_PART)
    if units == 0:
        return SegmentInfo(encoding, 0, 0, 0, single, single)
    if units <= single:
        return SegmentInfo(encoding, len(body), units, 1, single, single - units)
    parts, last = _pack(costs, part)
    return SegmentInfo(encoding, len(body), units, parts, part, part - last)


def validate_length(body: str) -> None:
    """Raise ``ValueError`` naming the length when a body exceeds what providers accept (1,600 characters)."""
    if len(body) > MAX_BODY_CHARACTERS:
        raise ValueError(
            f"The message is {len(body):,} characters long; the most a text message can carry is "
            f"{MAX_BODY_CHARACTERS:,}."
        )


def segment_count(body: str) -> int:
    """Segments a provider bills for ``body`` (an empty body still costs one)."""
    return max(1, count_segments(body).segments)
