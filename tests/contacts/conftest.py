from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from contacts.models import Contact, Segment


@pytest.fixture
def make_contact(db: None) -> Callable[..., Contact]:
    counter = iter(range(1000, 9999))

    def _make(**fields: Any) -> Contact:
        fields.setdefault("mobile", f"+4479110{next(counter):05d}")
        return Contact.objects.create(**fields)

    return _make


@pytest.fixture
def filter_segment(db: None) -> Callable[..., Segment]:
    def _make(rules: list[dict[str, str]], match: str = "all", name: str = "Filtered") -> Segment:
        return Segment.objects.create(name=name, kind=Segment.Kind.FILTER, filters={"match": match, "rules": rules})

    return _make
