"""Argument types shared by the management commands: a bad value is refused by argparse with a clear message."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def _at_least(value: str, convert: Callable[[str], float], minimum: float, kind: str) -> float:
    try:
        number = convert(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not {kind}") from None
    if number < minimum:
        raise argparse.ArgumentTypeError(f"{value} is not allowed: it must be {minimum:g} or more")
    return number


def positive_int(value: str) -> int:
    """1, 2, 3 …"""
    return int(_at_least(value, int, 1, "a whole number"))


def non_negative_float(value: str) -> float:
    """0 or more, fractions allowed (seconds)."""
    return _at_least(value, float, 0, "a number")
