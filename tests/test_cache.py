"""The tiered Cache over real tiers (diskcache directories, a private redis-server), through
both the sync and the async face."""

from __future__ import annotations

import pytest

from conftest import COMBOS
from mlcache import NULL, Cache, ConfigurationError, DiskTier, Entry, InvalidKeyError, MemoryTier, RedisTier
from mlcache.testing import FakeClock
from mlcache.tiers.base import physical_key

FACES = pytest.mark.parametrize("build", ["sync", "async"], indirect=True)


@FACES
@pytest.mark.parametrize("combo", COMBOS)
def test_set_get_delete(build, combo, impl):
    cache = build(combo, impl=impl)
    assert cache.get("k") is None and cache.get("k", "dflt") == "dflt"
    cache.set("k", {"a": [1, 2]})
    assert cache.get("k") == {"a": [1, 2]}
    cache.set("k", "v2")
    assert cache.get("k") == "v2"
    assert cache.delete("k") is True
    assert cache.get("k", "gone") == "gone"
    assert cache.delete("k") is False


@FACES
@pytest.mark.parametrize("combo", COMBOS)
def test_get_or_load_caches_values_and_nulls(build, combo, impl):
    cache = build(combo, impl=impl)
    calls = []

    def loader(value):
        def load():
            calls.append(value)
            return value

        return load

    assert cache.get_or_load("user:1", loader({"id": 1})) == {"id": 1}
    assert cache.get_or_load("user:1", loader("other")) == {"id": 1}
    assert cache.get_or_load("user:404", loader(None)) is None
    assert cache.get_or_load("user:404", loader("now found")) is None  # the null is cached
    assert calls == [{"id": 1}, None]
    assert cache.get("user:404", "dflt") is None  # cached None, not "not cached"
    stats = cache.stats()
    assert stats["loads"] == 2 and stats["null_hits"] >= 2


@FACES
@pytest.mark.parametrize("combo", ["L1+L2+L3", "L2+L3", "L3", "L1+L2"])
def test_null_ttl_is_shorter(build, combo):
    clock = FakeClock()
    cache = build(combo, timer=clock, ttl=300, null_ttl=10)
    cache.get_or_load("missing", lambda: None)
    cache.get_or_load("present", lambda: 1)
    clock.advance(11)
    assert cache.get_or_load("missing", lambda: "loaded") == "loaded"
    assert cache.get_or_load("present", lambda: 2) == 1


@FACES
@pytest.mark.parametrize("lower", ["L2", "L3"])
def test_backfill_carries_remaining_lifetime(build, lower, impl, shared_redis):
    """A hit below L1 is copied into L1 with what is left of its life, not a fresh TTL."""
    clock = FakeClock()
    writer = build(lower, timer=clock, ttl=100, redis=shared_redis)
    writer.set("k", "v")
    clock.advance(60)
    reader = build("L1+" + lower, timer=clock, impl=impl, ttl=100, redis=shared_redis)
    assert reader.get("k") == "v"  # from the lower tier, copied up
    memory = reader.cache.tiers[0]
    assert memory.get_entry("k").expires_at == pytest.approx(clock() + 40)
    clock.advance(41)
    assert memory.get("k") is None
    assert reader.get("k") is None


@FACES
def test_backfill_l3_to_l2_and_per_tier_ttl_only_shortens(build, impl, shared_redis):
    clock = FakeClock()
    writer = build("L3", timer=clock, ttl=100, redis=shared_redis)
    writer.set("k", "v")
    reader = build("L1+L2+L3", timer=clock, impl=impl, disk={"ttl": 10}, memory={"ttl": 500},
                   redis=shared_redis)  # fmt: skip
    assert reader.get("k") == "v"
    disk = reader.cache.tiers[1]
    entry, _ = disk.format.unpack(physical_key("k"), disk.get(physical_key("k")))
    assert entry.expires_at == pytest.approx(clock() + 10)  # capped by L2's ttl
    assert reader.cache.tiers[0].get_entry("k").expires_at == pytest.approx(clock() + 10)
    assert reader.stats()["tiers"]["redis"]["hits"] == 1


@FACES
@pytest.mark.parametrize("combo", COMBOS)
def test_get_many_and_set_many(build, combo, impl):
    cache = build(combo, impl=impl)
    cache.set_many({"a": 1, "b": None, b"c": [3]})
    assert cache.get_many(["a", "b", "c", "d"]) == {"a": 1, "b": None, "c": [3]}
    assert cache.get_many([b"a", "zz"]) == {b"a": 1}
    assert cache.get_many([]) == {}


@FACES
def test_get_many_reads_each_tier_in_one_batch_and_backfills(build, redis_server, shared_redis):
    import redis

    writer = build("L3", redis=shared_redis)
    writer.set_many({f"k{i}": i for i in range(100)})
    reader = build("L1+L2+L3", redis=shared_redis)
    admin = redis.Redis(port=redis_server.port)
    admin.config_resetstat()
    assert reader.get_many([f"k{i}" for i in range(100)]) == {f"k{i}": i for i in range(100)}
    stats = admin.info("commandstats")
    assert stats["cmdstat_mget"]["calls"] == 1
    assert "cmdstat_get" not in stats
    disk = reader.cache.tiers[1]
    assert all(disk.get(physical_key(f"k{i}")) is not None for i in range(100))
    assert reader.get_many([f"k{i}" for i in range(100)]) == {f"k{i}": i for i in range(100)}
    assert admin.info("commandstats")["cmdstat_mget"]["calls"] == 1  # now served by L1


@FACES
def test_set_many_is_one_round_trip(build, redis_server):
    import redis

    cache = build("L3")
    admin = redis.Redis(port=redis_server.port)
    admin.config_resetstat()
    cache.set_many({f"k{i}": i for i in range(50)})
    stats = admin.info("commandstats")
    assert stats["cmdstat_set"]["calls"] == 50  # pipelined: one round trip, not observable here
    assert cache.get_many([f"k{i}" for i in range(50)]) == {f"k{i}": i for i in range(50)}


@FACES
@pytest.mark.parametrize("combo", ["L1+L2+L3", "L3", "L2"])
def test_clear_removes_only_this_cache(build, combo, redis_server):
    import redis

    cache = build(combo)
    cache.set("a", 1)
    admin = redis.Redis(port=redis_server.port)
    admin.set("foreign:key", b"keep me")
    cache.clear()
    assert cache.get("a") is None
    assert admin.get("foreign:key") == b"keep me"
    cache.set("b", 2)
    assert cache.get("b") == 2


@FACES
def test_write_through_reaches_every_tier(build):
    cache = build("L1+L2+L3")
    cache.set("k", "v")
    memory, disk, redis_tier = cache.cache.tiers
    pk = physical_key("k")
    assert memory.get("k") == "v"
    assert disk.format.unpack(pk, disk.get(pk))[0].value == "v"
    assert redis_tier.format.unpack(pk, redis_tier.get(pk))[0].value == "v"
    assert cache.delete("k")
    assert memory.get("k") is None and disk.get(pk) is None and redis_tier.get(pk) is None


@FACES
@pytest.mark.parametrize("combo", ["L1+L2+L3", "L2+L3"])
def test_unserializable_value_changes_nothing(build, combo):
    from mlcache import SerializationError

    cache = build(combo, redis={"codec": "json"})
    cache.set("k", "old")
    with pytest.raises(SerializationError):
        cache.set("k", {1, 2})  # a set: JSON cannot hold it
    with pytest.raises(SerializationError):
        cache.set_many({"k": "new", "j": {3}})
    assert cache.get("k") == "old" and cache.get("j") is None
    for tier in cache.cache.tiers[-2:]:
        assert tier.format.unpack(physical_key("k"), tier.get(physical_key("k")))[0].value == "old"


@FACES
def test_oversize_value_skips_the_tier_and_drops_its_old_copy(build):
    cache = build("L2+L3", redis={"max_value_size": 1000, "compress_threshold": None})
    cache.set("k", "small")
    cache.set("k", "x" * 5000)
    assert cache.get("k") == "x" * 5000  # from L2
    redis_tier = cache.cache.tiers[1]
    assert redis_tier.get(physical_key("k")) is None  # the old small value is gone too
    assert cache.stats()["tiers"]["redis"]["oversize"] == 1


@FACES
@pytest.mark.parametrize("combo", ["L1+L2+L3", "L2+L3"])
def test_any_key_length_and_no_collisions(build, combo):
    cache = build(combo)
    long_a, long_b = "a" * 10_000, "a" * 9_999 + "b"
    cache.set(long_a, 1)
    cache.set(long_b, 2)
    hashed_look_alike = physical_key(long_a).decode()
    cache.set(hashed_look_alike, 3)
    assert (cache.get(long_a), cache.get(long_b), cache.get(hashed_look_alike)) == (1, 2, 3)
    cache.set("ключ 🔑", "unicode")
    cache.set(b"\xff\xfe", "bytes")
    assert cache.get("ключ 🔑") == "unicode" and cache.get(b"\xff\xfe") == "bytes"
    assert cache.get(b"a" * 10_000) == 1  # bytes and str name the same entry
    cache.set("é", "real")
    cache.set("\udcc3\udca9", "escaped bytes of é")  # no bytes key decodes to this str
    assert (cache.get("é"), cache.get(b"\xc3\xa9")) == ("real", "real")
    assert cache.get("\udcc3\udca9") == "escaped bytes of é"


@pytest.mark.parametrize("key", [1, 1.5, None, ("a",), ["a"]])
def test_invalid_keys(build, key):
    cache = build("L1+L2")
    with pytest.raises(InvalidKeyError, match="keys must be str or bytes"):
        cache.set(key, 1)
    with pytest.raises(InvalidKeyError):
        cache.get(key)


def test_sync_loader_error_propagates_and_nothing_is_cached(build):
    cache = build("L1+L2")

    def fails():
        raise LookupError("db down")

    with pytest.raises(LookupError, match="db down"):
        cache.get_or_load("k", fails)
    assert cache.get("k", "nothing") == "nothing"
    assert cache.stats()["load_errors"] == 1


def test_async_loader_rejected_by_sync_face(build):
    cache = build("L1")

    async def loader():
        return 1

    with pytest.raises(TypeError, match="use aget_or_load"):
        cache.get_or_load("k", loader)


def test_async_face_accepts_sync_and_async_loaders(build):
    import asyncio

    cache = build("L1+L2+L3")

    async def slow():
        await asyncio.sleep(0.01)
        return "async"

    async def main():
        assert await cache.cache.aget_or_load("a", slow) == "async"
        assert await cache.cache.aget_or_load("s", lambda: "sync") == "sync"
        assert await cache.cache.aget_many(["a", "s"]) == {"a": "async", "s": "sync"}
        await cache.cache.aclose()

    asyncio.run(main())


def test_cache_configuration_errors(tmp_path):
    with pytest.raises(ConfigurationError, match="at least one tier"):
        Cache()
    with pytest.raises(ConfigurationError, match="must be the first tier"):
        Cache(DiskTier(tmp_path), MemoryTier(10))
    with pytest.raises(ConfigurationError, match="not a cache tier"):
        Cache(object())
    with pytest.raises(ConfigurationError, match="null_ttl must be"):
        Cache(MemoryTier(10), null_ttl=0)


def test_context_managers(tmp_path):
    import asyncio

    with Cache(MemoryTier(10), DiskTier(tmp_path)) as cache:
        cache.set("k", 1)
    assert cache._closed

    async def main():
        async with Cache(MemoryTier(10), DiskTier(tmp_path)) as acache:
            await acache.aset("k", 2)
            assert await acache.aget("k") == 2
        return acache

    assert asyncio.run(main())._closed


def test_stale_copy_up_is_dropped_when_a_write_races(build):
    """A reader that fetched the old value from L2 must not put it into L1 after a writer in
    the same process replaced it: the copy-up is skipped (stripe version changed)."""
    import threading

    cache = build("L1+L2")
    cache.set("k", "old")
    memory, disk = cache.cache.tiers
    memory.delete("k")  # only L2 has it now
    fetched, release = threading.Event(), threading.Event()
    real_get = disk.get

    def slow_get(key):
        data = real_get(key)
        fetched.set()
        assert release.wait(10)
        return data

    disk.get = slow_get
    result = []
    reader = threading.Thread(target=lambda: result.append(cache.cache.get("k")))
    reader.start()
    assert fetched.wait(10)
    disk.get = real_get
    cache.cache.set("k", "new")  # the write completes while the reader holds "old"
    release.set()
    reader.join(10)
    assert result == ["old"]  # it read before the write: fine to return
    assert memory.get("k") == "new"  # but it did not overwrite L1
    assert cache.cache.get("k") == "new"


@pytest.mark.parametrize("write", ["set", "delete"])
def test_copy_up_into_l2_never_undoes_another_process_write(build, shared_redis, tmp_path, write):
    """A reads the old value from L3; meanwhile B (another process on the host: its own
    Cache on the same L2 directory) replaces or deletes the key; A's copy-up into L2 lands
    last, yet a third process on the host never sees the old value."""
    import threading

    held, release = threading.Event(), threading.Event()

    class HeldDisk(DiskTier):
        def fill_many(self, items, since):
            held.set()
            assert release.wait(10)
            return super().fill_many(items, since)

    l2 = tmp_path / "shared-l2"
    elsewhere = build("L3", redis=shared_redis)  # another host: writes L3 only
    elsewhere.set("k", "old")
    redis_url = elsewhere.cache.tiers[0].url
    a = Cache(MemoryTier(10), HeldDisk(l2), RedisTier(redis_url, **shared_redis), invalidation=False)
    b = build("L1+L2+L3", disk={"directory": l2}, redis=shared_redis, invalidation=False)
    result = []
    reader = threading.Thread(target=lambda: result.append(a.get("k")))
    reader.start()
    try:
        assert held.wait(10)  # A holds "old" from L3, about to copy it up
        if write == "set":
            b.set("k", "new")
        else:
            b.delete("k")
    finally:
        release.set()
        reader.join(10)
    assert result == ["old"]  # read before the write: fine to return
    expected = "new" if write == "set" else "absent"
    third = build("L2", disk={"directory": l2})
    assert third.get("k", "absent") == expected
    assert a.tiers[0].get("k") is None  # A did not keep it in L1 either
    a.close()


def test_disk_deletes_leave_tombstones_that_only_older_copy_ups_respect(tmp_path):
    import time

    tier = DiskTier(tmp_path)
    tier.bind(None)
    assert tier.delete(b"k") is False
    before = time.time() - 1
    tier.set(b"k", b"v1", None)
    assert tier.delete(b"k") is True and tier.delete(b"k") is False  # a tombstone is nothing
    assert tier.get(b"k") is None and tier.get_many([b"k"]) == [None]
    assert tier.fill(b"k", b"old", None, since=before) is False  # read before the delete
    assert tier.fill(b"k", b"v2", None, since=time.time()) is True  # read after it
    assert tier.fill(b"k", b"v3", None, since=time.time()) is False  # never over a value
    assert tier.get(b"k") == b"v2"
    tier.delete(b"k")
    tier.set(b"k", b"v4", None)  # a write replaces a tombstone
    assert tier.get(b"k") == b"v4"
    tier.close()


def test_load_racing_a_delete_is_returned_but_not_cached(build):
    cache = build("L1+L2")

    def loader():
        cache.cache.delete("k")  # the key is written while the load is in flight
        return "loaded before the delete"

    assert cache.get_or_load("k", loader) == "loaded before the delete"
    assert cache.get("k", "absent") == "absent"
    assert cache.stats()["uncached_loads"] == 1


@FACES
def test_null_sentinel_round_trips_every_tier(build, shared_redis):
    cache = build("L1+L2+L3", redis=shared_redis)
    cache.set("n", None)
    for tier in cache.cache.tiers[1:]:
        entry, _ = tier.format.unpack(physical_key("n"), tier.get(physical_key("n")))
        assert entry.value is NULL
    assert cache.cache.tiers[0].get("n") is NULL
    fresh = build("L2+L3", redis=shared_redis)
    assert fresh.get("n", "default") is None


def test_entries_expire_in_every_tier_by_the_cache_clock(build):
    clock = FakeClock()
    cache = build("L2+L3", timer=clock, ttl=5)
    cache.set("k", "v")
    clock.advance(5)
    assert cache.get("k") is None
    assert cache.stats()["tiers"]["disk"]["misses"] == 1


def test_stats_shape(build):
    cache = build("L1+L2+L3")
    cache.set("k", 1)
    cache.get("k")
    stats = cache.stats()
    assert set(stats["tiers"]) == {"memory", "disk", "redis"}
    assert stats["tiers"]["memory"]["hits"] == 1
    assert stats["tiers"]["redis"]["sets"] == 1
    assert {"loads", "load_errors", "null_hits", "uncached_loads"} <= set(stats)


def test_l1_counts_this_caches_writes_and_removals_but_not_copy_ups(build):
    cache = build("L1+L2")
    cache.set("k", 1)
    cache.set_many({"a": 1, "b": 2})
    cache.get_or_load("loaded", lambda: 3)
    cache.tiers[0].clear()
    assert cache.get("k") == 1  # copied up from L2: not a write
    assert cache.delete("k") and not cache.delete("never")
    cache.set("c", 3)
    cache._invalidate_local(["c", "a"], l2=False)  # (as the bus does for another's writes)
    memory = cache.stats()["tiers"]["memory"]
    assert (memory["sets"], memory["deletes"], memory["errors"]) == (5, 2, 0)  # ("a": cleared)
    assert set(cache.stats()["tiers"]["disk"]) >= {"sets", "deletes", "errors"}


def test_entry_type_is_public():
    assert Entry(1).stale_until == Entry(1).expires_at
