"""The project's Redis cache backend (smsapp/cache.py): Django's, with one client per connection pool."""

from __future__ import annotations

import pytest
from django.core.cache import cache

pytestmark = pytest.mark.redis


def test_the_redis_cache_makes_one_client_and_still_caches() -> None:
    client = cache._cache  # type: ignore[attr-defined]
    assert client.get_client() is client.get_client()
    assert client.get_client(write=True) is client.get_client()  # one server: one pool
    cache.set("smsapp:test:cache", {"a": 1}, timeout=30)
    assert cache.get("smsapp:test:cache") == {"a": 1}
    assert cache.delete("smsapp:test:cache")
    assert cache.get("smsapp:test:cache") is None
