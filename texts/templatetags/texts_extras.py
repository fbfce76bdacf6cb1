"""Template filters of the texts app."""

from __future__ import annotations

from django import template

from ..reports import duration as _duration

register = template.Library()


@register.filter
def duration(seconds: float | None) -> str:
    """``{{ seconds|duration }}``: 3 h 40 min, 12 min, 40 s."""
    return "" if seconds is None else _duration(float(seconds))
