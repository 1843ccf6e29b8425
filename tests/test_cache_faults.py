"""A tier that fails is skipped (fail-safe) or raises TierError (fail-fast)."""

from __future__ import annotations

import pytest

from mlcache import Cache, DiskTier, MemoryTier, RedisTier, TierError


def test_dead_redis_is_skipped(tmp_path, redis_factory, caplog):
    server = redis_factory()
    cache = Cache(MemoryTier(100), DiskTier(tmp_path), RedisTier(server.url, socket_timeout=0.2))
    cache.set("k", "v")
    server.kill()
    cache.tiers[0].clear()
    assert cache.get("k") == "v"  # from L2; L3 not even needed
    cache.set("j", "w")  # L3 write fails: skipped, counted
    assert cache.get_or_load("new", lambda: 42) == 42
    assert cache.get("j") == "w"
    stats = cache.stats()["tiers"]["redis"]
    assert stats["errors"] >= 2
    assert sum("tier skipped" in r.message for r in caplog.records) == 1  # rate-limited
    cache.close()


def test_fail_fast_tier_raises_tier_error(redis_factory):
    server = redis_factory()
    cache = Cache(MemoryTier(100), RedisTier(server.url, socket_timeout=0.2, on_error="raise"))
    server.kill()
    with pytest.raises(TierError, match="redis: get failed") as info:
        cache.get("k")
    assert info.value.tier == "redis"
    with pytest.raises(TierError, match="redis: set failed"):
        cache.set("k", 1)
    cache.close()
