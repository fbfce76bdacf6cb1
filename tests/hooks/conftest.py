from __future__ import annotations

from collections.abc import Iterator

import pytest

from hooks import services


@pytest.fixture(autouse=True)
def forget_subscriptions() -> Iterator[None]:
    """Each test's endpoints go with its transaction: the process's list of subscriptions must go with them too."""
    yield
    services._cached.update(at=0.0, checked=0.0, version=None, by_event={})
