"""The tier contract (``mlcache.testing.TierContract``) against the real tiers, and the
fault-injectable tier (``FaultyTier``) on its own and under a real Cache: degrade, don't fail."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from conftest import _PATIENT, Faces
from mlcache import Cache, DiskTier, MemoryTier, RedisTier, TierError, TierTimeout
from mlcache.resilience import CircuitBreaker
from mlcache.testing import FakeClock, FaultyTier, TierContract
from mlcache.tiers.base import physical_key
from redis_topologies import ClusterGroup
from test_topologies import require_topology_tools

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def disk(tmp_path):
    tier = DiskTier(tmp_path / "l2")
    yield tier
    tier.close()


@pytest.fixture
def redis_tier(redis_server, shared_redis):
    tier = RedisTier(redis_server.url, **shared_redis, **_PATIENT)
    yield tier
    tier.close()


# -- the contract, on every real tier and on FaultyTier without faults -------------------------


class TestDiskTier(TierContract):
    @pytest.fixture
    def tier(self, disk):
        return disk


class TestFaultyDiskTier(TierContract):
    @pytest.fixture
    def tier(self, disk):
        return FaultyTier(disk)


class TestRedisTier(TierContract):
    @pytest.fixture
    def tier(self, redis_tier):
        return redis_tier

    @pytest.mark.xfail(strict=True, reason="RedisTier.fill is SET NX: Redis keeps no tombstones")
    def test_fill_does_not_undo_a_later_delete(self, tier, face):
        super().test_fill_does_not_undo_a_later_delete(tier, face)


class TestFaultyRedisTier(TestRedisTier):
    @pytest.fixture
    def tier(self, redis_tier):
        return FaultyTier(redis_tier)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    require_topology_tools()
    with ClusterGroup(tmp_path_factory.mktemp("cluster")).start() as group:
        yield group


class TestRedisClusterTier(TestRedisTier):
    """(Cluster: hash-tagged keys, batches per slot.)"""

    @pytest.fixture
    def tier(self, cluster, shared_redis):
        tier = RedisTier(cluster.url, **shared_redis, **_PATIENT)
        yield tier
        tier.close()


# -- the contract catches broken tiers ----------------------------------------------------------


class _KeepsNoTtl(DiskTier):
    def set_many(self, items):
        super().set_many([(key, data, None) for key, data, _ in items])


class _Unordered(DiskTier):
    def get_many(self, keys):
        return [self.get(k) for k in sorted(keys)]


class _WritesKeepTheLease(DiskTier):
    def set_many(self, items):
        for key, data, ttl in items:
            self._db().set(key, data, expire=ttl)


class _FillOverwrites(DiskTier):
    def fill_many(self, items, since):
        self.set_many(items)
        return len(items)


class _NeverWakes(DiskTier):
    def lease_wait(self, key, holder, timeout):
        time.sleep(min(timeout, 1.0))
        return False


@pytest.mark.parametrize(
    ("broken", "test"),
    [
        (_KeepsNoTtl, "test_ttl_is_the_time_the_store_keeps_the_bytes"),
        (_Unordered, "test_batches"),
        (_WritesKeepTheLease, "test_writes_and_deletes_take_the_lease_away"),
        (_FillOverwrites, "test_fill_never_overwrites_and_keeps_the_lease"),
        (_NeverWakes, "test_lease_wait_is_woken_when_the_lease_ends"),
    ],
)
def test_the_contract_fails_a_broken_tier(tmp_path, broken, test):
    tier = broken(tmp_path)
    try:
        with pytest.raises(AssertionError):
            getattr(TierContract(), test)(tier, "sync")
    finally:
        tier.close()


def test_importing_mlcache_testing_does_not_import_pytest():
    code = "import sys, mlcache, mlcache.testing; sys.exit('pytest' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# -- FaultyTier on its own -----------------------------------------------------------------------

ARGS = {
    "get": (b"k",),
    "get_many": ([b"k"],),
    "set": (b"k", b"v", None),
    "set_many": ([(b"k", b"v", None)],),
    "fill": (b"k", b"v", None, 0.0),
    "fill_many": ([(b"k", b"v", None)], 0.0),
    "delete": (b"k",),
    "delete_many": ([b"k"],),
    "clear": (),
    "lease_acquire": (b"k", b"token", 10.0),
    "lease_wait": (b"k", b"token", 0.01),
    "lease_release": (b"k", b"token"),
    "lease_renew": (b"k", b"token", 10.0),
    "set_under_lease": (b"k", b"v", None, b"token"),
}


def test_down_fails_every_operation_in_both_faces_and_heal_restores_them(disk):
    assert set(ARGS) == set(FaultyTier.OPERATIONS)
    tier = FaultyTier(disk)
    disk.set(b"k", b"before", None)
    tier.down()

    async def async_calls():
        for name, args in ARGS.items():
            if name != "lease_renew":
                with pytest.raises(ConnectionError, match=f"{name}: fault injected"):
                    await getattr(tier, "a" + name)(*args)

    for name, args in ARGS.items():
        with pytest.raises(ConnectionError, match=f"{name}: fault injected"):
            getattr(tier, name)(*args)
    asyncio.run(async_calls())
    assert disk.get(b"k") == b"before"  # nothing reached the inner tier
    assert tier.calls == {name: 1 if name == "lease_renew" else 2 for name in ARGS}
    tier.heal()
    for name, args in ARGS.items():
        getattr(tier, name)(*args)
    assert disk.get(b"k") is None  # the forwarded set, delete and clear reached the inner tier


def test_a_fault_for_the_next_calls_then_until_healed(disk):
    tier = FaultyTier(disk)
    tier.fail("get", error=TimeoutError, times=2)
    for _ in range(2):
        with pytest.raises(TimeoutError, match="get: fault injected by FaultyTier"):
            tier.get(b"k")
    assert tier.get(b"k") is None  # used up
    tier.set(b"k", b"v", None)  # other operations were never affected
    refused = ConnectionRefusedError("no route")
    tier.fail("get", "set", error=refused)
    for _ in range(3):
        with pytest.raises(ConnectionRefusedError) as info:
            asyncio.run(tier.aget(b"k"))
        assert info.value is refused  # an instance is raised as it is
    tier.heal("get")
    assert tier.get(b"k") == b"v"
    with pytest.raises(ConnectionRefusedError):
        tier.set(b"k", b"w", None)
    tier.heal()
    tier.set(b"k", b"w", None)
    assert tier.get(b"k") == b"w"
    assert tier.calls == {"get": 8, "set": 3}


def test_delays_use_the_injected_sleeps_and_come_before_the_fault(disk):
    slept, aslept = [], []

    async def asleep(seconds):
        aslept.append(seconds)

    tier = FaultyTier(disk, sleep=slept.append, asleep=asleep)
    tier.delay("get", seconds=0.5, times=1)
    tier.delay("set", seconds=0.25)
    assert tier.get(b"k") is None and tier.get(b"k") is None
    tier.set(b"k", b"v", None)
    asyncio.run(tier.aset(b"k", b"v", None))
    assert slept == [0.5, 0.25] and aslept == [0.25]
    tier.fail("set", error=TimeoutError)  # a slow timeout: waits, then fails
    with pytest.raises(TimeoutError):
        tier.set(b"k", b"v", None)
    assert slept == [0.5, 0.25, 0.25]


def test_a_delay_really_waits_by_default(disk):
    tier = FaultyTier(disk)
    tier.delay("get", seconds=0.05)
    started = time.monotonic()
    tier.get(b"k")
    asyncio.run(tier.aget(b"k"))
    assert time.monotonic() - started >= 0.1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda t: t.fail("aget"), "not operations"),
        (lambda t: t.fail(), "at least one"),
        (lambda t: t.fail("get", times=0), "times"),
        (lambda t: t.fail("get", times=True), "times"),
        (lambda t: t.delay("get", seconds=-1), "seconds"),
        (lambda t: t.delay("get", seconds=float("nan")), "seconds"),
        (lambda t: t.heal("nope"), "not operations"),
    ],
)
def test_bad_fault_settings_are_refused(disk, call, message):
    with pytest.raises(ValueError, match=message):
        call(FaultyTier(disk))


def test_forwards_what_the_cache_reads_from_a_tier(tmp_path, redis_tier):
    breaker = CircuitBreaker()
    inner = DiskTier(tmp_path, ttl=60, on_error="raise", max_value_size=1000, breaker=breaker)
    tier = FaultyTier(inner)
    assert not hasattr(tier, "bus_publish")  # (the Cache looks for a bus this way)
    assert (tier.name, tier.level, tier.supports_leases, tier.host_local) == ("disk", 2, True, True)
    assert (tier.ttl, tier.on_error, tier.max_value_size) == (60, "raise", 1000)
    assert tier.breaker is breaker and tier.retry is inner.retry
    assert tier.identity() == inner.identity()
    tier.bind(None)
    assert tier.format is inner.format is not None
    assert repr(tier) == f"FaultyTier({inner!r})"
    faulty_redis = FaultyTier(redis_tier)
    assert (faulty_redis.name, faulty_redis.level, faulty_redis.host_local) == ("redis", 3, False)
    assert faulty_redis.prefix == redis_tier.prefix and hasattr(faulty_redis, "bus_publish")
    with Cache(MemoryTier(10), tier, faulty_redis) as cache:
        stats = cache.stats()
        assert set(stats["tiers"]) == {"memory", "disk", "redis"}
        assert "bus" in stats  # the invalidation bus found the wrapped RedisTier


# -- FaultyTier under a real Cache: degrade, don't fail --------------------------------------------


@pytest.fixture
def faulty_cache(request, tmp_path):
    """make(**disk_options) -> (cache through the face under test, its FaultyTier(DiskTier))."""
    made = []
    face = getattr(request, "param", "sync")

    def make(**disk_options):
        tier = FaultyTier(DiskTier(tmp_path / "l2", **disk_options))
        cache = Faces(Cache(MemoryTier(100), tier), face)
        made.append(cache)
        return cache, tier

    yield make
    for cache in made:
        cache.finish()


FACES = pytest.mark.parametrize("faulty_cache", ["sync", "async"], indirect=True)


@FACES
def test_a_failing_get_is_a_miss_and_the_loader_runs(faulty_cache):
    cache, tier = faulty_cache()
    cache.set("k", "cached")
    cache.tiers[0].clear()  # only L2 holds it now
    tier.fail("get", error=TimeoutError)
    loads = []

    def load():
        loads.append("k")
        return "loaded"

    assert cache.get_or_load("k", load) == "loaded"
    assert loads == ["k"]
    disk = cache.stats()["tiers"]["disk"]
    assert disk["hits"] == 0 and tier.calls["get"] >= 1
    assert disk["timeouts"] == disk["errors"] == tier.calls["get"]
    tier.heal()
    cache.tiers[0].clear()
    assert cache.get("k") == "loaded"  # the load was written through the healthy writes


@FACES
def test_a_failing_set_is_counted_and_does_not_raise(faulty_cache):
    cache, tier = faulty_cache()
    tier.fail("set", error=ConnectionResetError)
    cache.set("k", "v")
    disk = cache.stats()["tiers"]["disk"]
    assert (disk["errors"], disk["dropped_writes"], disk["retries"], disk["sets"]) == (1, 1, 1, 0)
    assert tier.calls["set"] == 2  # a reset connection is retried once
    assert cache.get("k") == "v"  # L1 took it
    assert tier.inner.get(physical_key("k")) is None


def test_a_reset_connection_is_retried_once(faulty_cache):
    cache, tier = faulty_cache()
    cache.set("k", "v")
    cache.tiers[0].clear()
    tier.fail("get", error=ConnectionResetError, times=1)
    assert cache.get("k") == "v"
    disk = cache.stats()["tiers"]["disk"]
    assert (disk["hits"], disk["retries"], disk["errors"]) == (1, 1, 0)
    assert tier.calls["get"] == 2


def test_fail_fast_is_the_inner_tiers_setting(faulty_cache):
    cache, tier = faulty_cache(on_error="raise")
    assert tier.on_error == "raise"
    tier.fail("get", error=ConnectionRefusedError)
    with pytest.raises(TierError, match="disk: get failed") as info:
        cache.get("k")
    assert info.value.tier == "disk" and tier.calls["get"] == 2
    tier.fail("set", error=TimeoutError)
    with pytest.raises(TierTimeout, match="disk: set timed out"):
        cache.set("k", 1)


def test_the_breaker_opens_and_the_healed_tier_is_used_again(faulty_cache):
    clock = FakeClock()
    cache, tier = faulty_cache(breaker=CircuitBreaker(failures=2, window=10, cooldown=5, clock=clock))
    cache.set("k", "v")
    cache.tiers[0].clear()
    tier.down(error=TimeoutError)
    assert cache.get("k") is None and cache.get("k") is None
    assert cache.stats()["tiers"]["disk"]["breaker"] == "open"
    assert cache.get("k") is None  # skipped: the open breaker costs no call
    assert tier.calls["get"] == 2
    tier.heal()
    assert cache.get("k") is None and tier.calls["get"] == 2  # still open: cooling down
    clock.advance(5)
    assert cache.get("k") == "v"  # the probe succeeds
    disk = cache.stats()["tiers"]["disk"]
    assert (disk["breaker"], disk["skips"], disk["timeouts"], disk["hits"]) == ("closed", 2, 2, 1)
    assert tier.calls["get"] == 3


def test_a_failing_lease_tier_hands_the_lease_to_the_next(tmp_path, redis_tier):
    disk, redis = FaultyTier(DiskTier(tmp_path)), FaultyTier(redis_tier)
    with Cache(MemoryTier(100), disk, redis) as cache:
        redis.fail("lease_acquire", error=TimeoutError)
        assert cache.get_or_load("k", lambda: "loaded") == "loaded"
        assert redis.calls["lease_acquire"] == 1 and disk.calls["lease_acquire"] == 1
        assert disk.calls["set_under_lease"] == 1  # the disk's lease judged the write
        pkey = physical_key("k")
        assert disk.inner.get(pkey) is not None and redis_tier.get(pkey) is not None
        assert cache.stats()["tiers"]["redis"]["errors"] == 1
