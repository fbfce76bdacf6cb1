"""The dashboard's figures. The project package may import every app; each app offers its own summary."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Card:
    label: str
    value: str
    url_name: str


def cards() -> list[Card]:
    from django.contrib.auth import get_user_model

    users = get_user_model().objects.filter(is_active=True).count()
    return [Card("Active users", f"{users:,}", "users")]
