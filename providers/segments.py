"""How many SMS segments a body costs, as carriers count them (GSM-7 or UCS-2, with concatenation headers).

Rate limits are costed in segments, and both the fake server and the senders need the same count.
"""

from __future__ import annotations

import math

# The GSM 03.38 basic character set; the extension set costs two septets per character (escape + char).
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")


def is_gsm7(body: str) -> bool:
    return all(ch in _GSM_BASIC or ch in _GSM_EXTENDED for ch in body)


def segment_count(body: str) -> int:
    """Segments of ``body``: 160/153 septets per segment in GSM-7, 70/67 UTF-16 units in UCS-2 (never below 1)."""
    if is_gsm7(body):
        units = sum(2 if ch in _GSM_EXTENDED else 1 for ch in body)
        single, multi = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, multi = 70, 67
    if units <= single:
        return 1
    return math.ceil(units / multi)
