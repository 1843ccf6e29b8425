"""RedisTier on Redis Cluster and Redis Sentinel: real topologies started on loopback ports
(``redis_topologies.py``), the tiered-cache contract and stampede tests run against them,
the cluster key layout, batches per slot, the invalidation stream, and failover.

The Sentinel failover test prints the time from SIGKILL of the primary to the first write that
reached Redis again (``pytest -s -k failover``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import threading
import time

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

import test_cache as contract
import test_invalidation as invalidation
import test_stampede as stampede
from conftest import building
from mlcache import Cache, ConfigurationError, MemoryTier, RedisTier
from mlcache.resilience import CircuitBreaker
from mlcache.tiers.base import physical_key
from mlcache.tiers.redis import _hash_tag, mask_url
from redis_proc import REDIS_REQUIRED, require_redis_server
from redis_topologies import ClusterGroup, SentinelGroup

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]

_prefixes = itertools.count()
FACES = pytest.mark.parametrize("build", ["sync", "async"], indirect=True)
BOTH = pytest.mark.parametrize("topology", ["cluster", "sentinel"], indirect=True)


def require_topology_tools() -> None:
    require_redis_server()
    if shutil.which("redis-cli") is None:
        reason = "redis-cli is not on PATH (redis-tools)"
        if REDIS_REQUIRED:
            pytest.fail(f"{reason} (required: CI=true or MLCACHE_REQUIRE_REDIS=1)")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One 3-master cluster for the module (tests use fresh prefixes)."""
    require_topology_tools()
    group = ClusterGroup(tmp_path_factory.mktemp("cluster")).start()
    yield group
    group.stop()


@pytest.fixture(scope="module")
def sentinel(tmp_path_factory):
    """One primary + replica + sentinel for the module; failover tests start their own."""
    require_redis_server()
    group = SentinelGroup(tmp_path_factory.mktemp("sentinel")).start()
    yield group
    group.stop()


@pytest.fixture
def topology(request):
    """The topology L3 runs on: ``cluster`` unless a test asks for others."""
    return request.getfixturevalue(getattr(request, "param", "cluster"))


@pytest.fixture
def build(request, tmp_path, topology):
    """conftest's ``build``, with L3 on this module's topology: build(combo, **options) ->
    a Cache through the face under test (``build`` parameter: sync or async)."""
    yield from building(request, tmp_path, lambda: topology.url, prefix="topo")


@pytest.fixture
def shared_redis():
    return {"prefix": f"shared-topo{next(_prefixes)}:"}


def admin(port: int) -> redis.Redis:
    return redis.Redis(port=port, socket_timeout=5)


# -- URLs, settings, secrets (no server) ---------------------------------------------------------


def test_urls_of_each_topology():
    from mlcache.tiers.redis import _parse_url

    assert _parse_url("redis://localhost:6379/0") is None  # redis-py reads it
    t = _parse_url("redis+sentinel://:s%40cret@s1:26380,s2,[::1]:26381/mymaster/2")
    assert (t.mode, t.hosts, t.service, t.db) == ("sentinel", [("s1", 26380), ("s2", 26379), ("::1", 26381)], "mymaster", 2)
    assert (t.username, t.password) == (None, "s@cret")
    t = _parse_url("redis+cluster://app:pw@n1:7000,n2:7001")
    assert (t.mode, t.hosts, t.db, t.username, t.password) == ("cluster", [("n1", 7000), ("n2", 7001)], 0, "app", "pw")
    assert _parse_url("redis+cluster://n1").hosts == [("n1", 6379)]
    for bad, message in [
        ("redis+sentinel://s1:26379", "name the service"),
        ("redis+sentinel://s1:26379/m/x", "database must be a number"),
        ("redis+cluster://n1:7000/3", "only database 0"),
        ("redis+cluster://n1:99999", "bad port"),
        ("redis+cluster://:hunter2@n1:x", "bad port"),
        ("redis+cluster://n1,,n2", "host is missing"),
        ("redis+cluster://n1?prefix=a", "options go to RedisTier"),
    ]:
        with pytest.raises(ConfigurationError, match=message) as info:
            RedisTier(url=bad)
        assert "hunter2" not in str(info.value)


def test_passwords_are_masked_in_every_scheme():
    assert mask_url("redis+sentinel://:pw@s1:1,s2:2/m/0") == "redis+sentinel://:***@s1:1,s2:2/m/0"
    assert mask_url("redis+cluster://user:pw@n1:1,[::1]:2") == "redis+cluster://user:***@n1:1,[::1]:2"
    assert mask_url("redis://:p@ss@h:1/0?x=1") == "redis://:***@h:1/0?x=1"
    assert mask_url("redis://user@h:1") == "redis://user@h:1"  # a user name alone is no secret
    assert mask_url("unix:///tmp/redis.sock") == "unix:///tmp/redis.sock"
    for url in ("redis+sentinel://:hunter2@127.0.0.1:1/m", "redis+cluster://:hunter2@127.0.0.1:1"):
        assert "hunter2" not in repr(RedisTier(url=url))


def test_settings_take_sentinel_and_cluster_urls():
    import mlcache

    mlcache.configure({"tiers": [
        "memory://?maxsize=10",
        "redis+cluster://:hunter2@127.0.0.1:1,127.0.0.1:2?prefix=app:&socket_timeout=0.2",
    ]})  # fmt: skip
    tier = mlcache.get_cache().tiers[1]
    assert isinstance(tier, RedisTier) and tier.mode == "cluster" and tier.prefix == "app:"
    assert "hunter2" not in json.dumps(mlcache.settings.describe())
    mlcache.configure({"tiers": [{"type": "redis", "url": "redis+sentinel://127.0.0.1:1/svc/1"}]})
    assert mlcache.get_cache().tiers[0].mode == "sentinel"


def test_tiers_from_the_environment_keep_their_host_lists(monkeypatch):
    import mlcache

    monkeypatch.setenv("MLCACHE_TIERS", "memory://?maxsize=10, redis+cluster://127.0.0.1:1,127.0.0.1:2"
                       "?prefix=env:,redis+sentinel://127.0.0.1:3,127.0.0.1:4/svc")  # fmt: skip
    mlcache.configure()
    memory, cluster_tier, sentinel_tier = mlcache.get_cache().tiers
    assert cluster_tier.url == "redis+cluster://127.0.0.1:1,127.0.0.1:2" and cluster_tier.prefix == "env:"
    assert sentinel_tier._target.hosts == [("127.0.0.1", 3), ("127.0.0.1", 4)]


def test_a_prefix_with_braces_is_refused_on_cluster():
    with pytest.raises(ConfigurationError, match="may not contain"):
        RedisTier(url="redis+cluster://127.0.0.1:1", prefix="app{1}:")
    RedisTier(url="redis+sentinel://127.0.0.1:1/m", prefix="app{1}:")  # fine elsewhere


def test_the_guard_retries_a_lost_connection_once_never_a_timeout():
    """redis-py's ConnectionError is not the builtin one: the tier tells its guard what a
    refused, reset or (under Sentinel) demoted connection looks like."""
    from redis.sentinel import MasterNotFoundError

    retry = RedisTier(url="redis+sentinel://127.0.0.1:1/m").retry
    assert retry.delays(redis.ConnectionError("The previous master is now a slave"), 0) is not None
    assert retry.delays(MasterNotFoundError("no master"), 0) is not None
    assert retry.delays(ConnectionResetError(), 0) is not None
    assert retry.delays(redis.ConnectionError("reset"), 1) is None  # once
    for error in (redis.TimeoutError("slow"), redis.AuthenticationError("bad password"),
                  redis.ReadOnlyError("READONLY"), redis.ResponseError("ERR")):  # fmt: skip
        assert retry.delays(error, 0) is None, error
    assert RedisTier(url="redis+cluster://127.0.0.1:1", retries=0).retry.delays(redis.ConnectionError(), 0) is None


# -- the cluster key layout ----------------------------------------------------------------------

_cluster_tier = RedisTier(url="redis+cluster://127.0.0.1:1", prefix="p:")  # never connects

AWKWARD_KEYS = [b"", b"{", b"}", b"{}", b"}{", b"a}b", b"{a}", b"}}}", b"a{b}c", b"\xff\x00}",
                physical_key("x" * 1000), physical_key("\x00nul"), b":", b"k"]  # fmt: skip


def names(tier: RedisTier, key: bytes) -> list[bytes]:
    return [tier._data(key), tier._lease(key), tier._done(key, b"0123456789abcdef")]


@pytest.mark.parametrize("key", AWKWARD_KEYS)
def test_data_lease_and_wake_up_list_share_a_slot(key):
    from redis.cluster import key_slot

    assert len({key_slot(name) for name in names(_cluster_tier, key)}) == 1


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=40), st.binary(max_size=40))
def test_cluster_names_share_a_slot_and_never_collide(a, b):
    from redis.cluster import key_slot

    assert len({key_slot(name) for name in names(_cluster_tier, a)}) == 1
    if a != b:
        assert _cluster_tier._data(a) != _cluster_tier._data(b)
        assert _cluster_tier._lease(a) != _cluster_tier._lease(b)


def test_plain_keys_are_readable_in_their_tag():
    assert _cluster_tier._data(b"user:42") == b"p:{user:42}"
    assert _cluster_tier._lease(b"user:42") == b"p:\x00lease:{user:42}"
    assert _cluster_tier._done(b"user:42", b"t") == b"p:\x00wake:{user:42}:t"
    assert _hash_tag(b"a}b").endswith(b"}:a}b") and len(_hash_tag(b"")) == len(b"{12345678}:")
    sentinel_tier = RedisTier(url="redis+sentinel://127.0.0.1:1/m", prefix="p:")
    assert sentinel_tier._data(b"user:42") == b"p:user:42"  # no tags outside a cluster


def test_slots_agree_with_the_servers(cluster):
    tier = RedisTier(url=cluster.url, prefix="slots:")
    node = cluster.admin()
    for key in AWKWARD_KEYS:
        slots = {node.cluster("keyslot", name) for name in names(tier, key)}
        assert len(slots) == 1, key
    tier.close()


# -- the tiered-cache contract on Cluster (and Sentinel) -----------------------------------------


@BOTH
@FACES
@pytest.mark.parametrize("combo", ["L1+L3", "L3"])
def test_set_get_delete(build, combo, impl):
    contract.test_set_get_delete(build, combo, impl)


@BOTH
@FACES
@pytest.mark.parametrize("combo", ["L1+L3", "L3"])
def test_get_or_load_caches_values_and_nulls(build, combo, impl):
    contract.test_get_or_load_caches_values_and_nulls(build, combo, impl)


@FACES
@pytest.mark.parametrize("combo", ["L1+L2+L3", "L3"])
def test_null_ttl_is_shorter(build, combo):
    contract.test_null_ttl_is_shorter(build, combo)


@FACES
def test_backfill_carries_remaining_lifetime(build, impl, shared_redis):
    contract.test_backfill_carries_remaining_lifetime(build, "L3", impl, shared_redis)


@FACES
def test_backfill_l3_to_l2_and_per_tier_ttl_only_shortens(build, impl, shared_redis):
    contract.test_backfill_l3_to_l2_and_per_tier_ttl_only_shortens(build, impl, shared_redis)


@BOTH
@FACES
@pytest.mark.parametrize("combo", ["L1+L3", "L3", "L1+L2+L3"])
def test_get_many_and_set_many(build, combo, impl):
    contract.test_get_many_and_set_many(build, combo, impl)


@FACES
def test_write_through_reaches_every_tier(build):
    contract.test_write_through_reaches_every_tier(build)


@FACES
def test_unserializable_value_changes_nothing(build):
    contract.test_unserializable_value_changes_nothing(build, "L1+L2+L3")


@FACES
def test_oversize_value_skips_the_tier_and_drops_its_old_copy(build):
    contract.test_oversize_value_skips_the_tier_and_drops_its_old_copy(build)


@FACES
@pytest.mark.parametrize("combo", ["L1+L2+L3", "L2+L3"])
def test_any_key_length_and_no_collisions(build, combo):
    contract.test_any_key_length_and_no_collisions(build, combo)


@FACES
def test_null_sentinel_round_trips_every_tier(build, shared_redis):
    contract.test_null_sentinel_round_trips_every_tier(build, shared_redis)


def test_entries_expire_in_every_tier_by_the_cache_clock(build):
    contract.test_entries_expire_in_every_tier_by_the_cache_clock(build)


def test_async_face_accepts_sync_and_async_loaders(build):
    contract.test_async_face_accepts_sync_and_async_loaders(build)


@BOTH
@FACES
def test_many_keys_across_every_node(build, topology):
    cache = build("L1+L3")
    mapping = {f"user:{i}": {"id": i} if i % 7 else None for i in range(500)}
    cache.set_many(mapping)
    cache.cache.tiers[0].clear()
    assert cache.get_many([*mapping, "absent"]) == mapping
    tier = cache.cache.tiers[1]
    if tier.mode == "cluster":
        owners = {tier._client().get_node_from_key(tier._data(physical_key(k))).name for k in mapping}
        assert len(owners) == len(topology.nodes)  # the keys really are spread over the nodes
    for key in list(mapping)[:250]:
        cache.delete(key)
    cache.cache.tiers[0].clear()
    assert cache.get_many(list(mapping)) == dict(list(mapping.items())[250:])


def commandstats(cluster: ClusterGroup) -> dict[str, int]:
    total: dict[str, int] = {}
    for node in cluster.nodes:
        for name, stat in admin(node.port).info("commandstats").items():
            total[name] = total.get(name, 0) + stat["calls"]
    return total


def reset_stats(cluster: ClusterGroup) -> None:
    for node in cluster.nodes:
        admin(node.port).config_resetstat()


@FACES
def test_get_many_is_one_mget_per_slot_and_set_many_one_script_per_slot(build, cluster):
    cache = build("L3")
    tier = cache.cache.tiers[0]
    by_slot: dict[int, list[str]] = {}
    for i in itertools.count():  # find keys that share slots
        key = f"k{i}"
        by_slot.setdefault(tier._slot(physical_key(key)), []).append(key)
        if sum(len(keys) >= 3 for keys in by_slot.values()) >= 2:
            break
    shared = [keys[:3] for keys in by_slot.values() if len(keys) >= 3][:2]
    keys = shared[0] + shared[1] + ["alone:1", "alone:2"]
    slots = {tier._slot(physical_key(k)) for k in keys}
    assert len(slots) == 4
    reset_stats(cluster)
    cache.set_many({k: k for k in keys})
    stats = commandstats(cluster)
    assert stats["cmdstat_eval"] == 4 and "cmdstat_evalsha" not in stats  # one script per slot
    assert stats["cmdstat_set"] == len(keys)
    reset_stats(cluster)
    assert cache.get_many(keys) == {k: k for k in keys}
    stats = commandstats(cluster)
    assert stats["cmdstat_mget"] == 4 and "cmdstat_get" not in stats


@FACES
def test_clear_scans_every_primary_and_removes_only_this_cache(build, cluster):
    cache = build("L1+L3")
    other = build("L3")
    cache.set_many({f"k{i}": i for i in range(300)})
    other.set("mine", "kept")
    cluster_client = cache.cache.tiers[1]._client()
    cluster_client.set("foreign:key", b"keep me")
    cache.clear()
    assert cache.get_many([f"k{i}" for i in range(300)]) == {}
    prefix = cache.cache.tiers[1].prefix.encode()
    for node in cluster.nodes:  # (the invalidation stream, if any, may announce the clear)
        assert set(admin(node.port).scan_iter(match=prefix + b"*")) <= {prefix + b"\x00bus"}
    assert cluster_client.get("foreign:key") == b"keep me" and other.get("mine") == "kept"


# -- single-flight on Cluster (and Sentinel) -----------------------------------------------------


@BOTH
@pytest.mark.parametrize("combo", ["L1+L3", "L3", "L1+L2+L3"])
def test_64_threads_one_cold_key_one_load(build, combo):
    stampede.test_64_threads_one_cold_key_one_load(build, combo)


@BOTH
@pytest.mark.parametrize("combo", ["L1+L3", "L3"])
def test_64_tasks_one_cold_key_one_load(build, combo):
    stampede.test_64_tasks_one_cold_key_one_load(build, combo)


def test_leader_exception_reaches_every_waiter_and_is_not_cached(build):
    stampede.test_leader_exception_reaches_every_waiter_and_is_not_cached(build)


def test_cancelled_leader_task_does_not_strand_waiters(build):
    stampede.test_cancelled_leader_task_does_not_strand_waiters(build)


def test_reentrant_load_raises_instead_of_deadlocking(build):
    stampede.test_reentrant_load_raises_instead_of_deadlocking(build, "L1+L2+L3")


def test_load_in_flight_then_delete_here_leaves_no_old_value(build):
    stampede.test_load_in_flight_then_delete_here_leaves_no_old_value(build)


@BOTH
def test_load_in_flight_then_delete_in_another_process(build, shared_redis, tmp_path):
    stampede.test_load_in_flight_then_delete_in_another_process(build, shared_redis, tmp_path)


def test_set_during_load_wins_over_the_load(build):
    stampede.test_set_during_load_wins_over_the_load(build)


@pytest.mark.parametrize("face", ["sync", "async"])
def test_stale_while_revalidate_serves_old_and_refreshes_once(build, face):
    stampede.test_stale_while_revalidate_serves_old_and_refreshes_once(build, face)


def test_lookup_tells_how_a_value_was_served(build):
    stampede.test_lookup_tells_how_a_value_was_served(build)


def test_waiting_costs_a_bounded_number_of_redis_commands(build, cluster):
    """As on one server: the waiter blocks in XREAD on the node that owns the key's slot."""
    cache = build("L1+L3", invalidation=False)  # (the bus's stream may live on the same node)
    tier = cache.cache.tiers[1]
    tier._blocking()  # (the blocking client reads the slot map when built: not what is counted)
    owner = tier._client().get_node_from_key(tier._data(physical_key("k")))
    stampede.test_waiting_costs_a_bounded_number_of_redis_commands(
        lambda *a, **k: cache, type("Node", (), {"port": owner.port})
    )


def test_lease_wait_blocks_on_the_slot_of_the_key(cluster):
    tier = RedisTier(url=cluster.url, prefix="lease:")
    Cache(tier)
    pk = b"a}b{c"
    assert tier.lease_acquire(pk, b"holder", 10) is None
    assert tier.lease_acquire(pk, b"other", 10) == b"holder"
    node = tier._client().get_node_from_key(tier._data(pk))
    assert admin(node.port).exists(tier._lease(pk)) == 1  # the lease lives beside the data
    woken = []
    waiter = threading.Thread(target=lambda: woken.append(tier.lease_wait(pk, b"holder", 5)))
    waiter.start()
    time.sleep(0.1)
    assert tier.set_under_lease(pk, b"value", 60, b"holder")
    waiter.join(10)
    assert woken == [True] and tier.get(pk) == b"value"
    assert admin(node.port).exists(tier._done(pk, b"holder")) == 1  # there for later waiters too
    tier.close()


@BOTH
def test_4_processes_x_16_threads_one_load(tmp_path, topology, redis_server):
    import test_stampede_processes as procs

    key = f"cold-{next(_prefixes)}"
    start_at = time.time() + 2.0
    config = {"memory": {"maxsize": 100}, "disk": {"directory": str(tmp_path / "l2")},
              "redis": {"url": topology.url, "prefix": f"procs{next(_prefixes)}:"}}  # fmt: skip
    spec = {"config": config, "key": key, "threads": 16, "start_at": start_at, "delay": 0.05,
            "counter": redis_server.url}  # fmt: skip
    outs = [json.loads(p.communicate(timeout=60)[0]) for p in [procs.spawn(spec) for _ in range(4)]]
    values = [v for out in outs for v in out["values"]]
    assert len(values) == 64 and len(set(values)) == 1
    assert sum(out["loads"] for out in outs) == 1
    assert int(admin(redis_server.port).get(f"loads:{key}")) == 1


@BOTH
def test_a_closed_tier_reconnects_on_next_use(topology):
    tier = RedisTier(url=topology.url, prefix=f"close{next(_prefixes)}:")
    cache = Cache(tier)
    cache.set("k", 1)
    assert tier.lease_wait(b"k", b"nobody", 0.01) is False  # (opens the blocking client too)
    cache.close()
    assert cache.stats()["tiers"]["redis"]["errors"] == 0
    tier.set(b"k2", b"raw", None)  # the tier itself is usable again: new connections
    assert tier.get(b"k2") == b"raw" and tier.lease_wait(b"k", b"nobody", 0.01) is False
    tier.close()


# -- the invalidation stream ---------------------------------------------------------------------


@BOTH
def test_bus_round_trip(topology):
    writer = RedisTier(url=topology.url, prefix=f"bus{next(_prefixes)}:")
    reader = RedisTier(url=topology.url, prefix=writer.prefix)
    try:
        assert writer.bus_last() == b"0-0"
        first = writer.bus_publish({b"k": b'["a"]'}, maxlen=100)
        assert reader.bus_has(first) and reader.bus_last() == first
        got = []
        thread = threading.Thread(target=lambda: got.extend(reader.bus_read(first, 1.0, 10)))
        thread.start()
        time.sleep(0.1)  # the reader is blocked in XREAD
        second = writer.bus_publish({b"k": b'["b"]'}, maxlen=100)
        thread.join(5)
        assert got == [(second, {b"k": b'["b"]'})]
        assert reader.bus_read(b"0-0", 0.01, 10) == [(first, {b"k": b'["a"]'}), (second, {b"k": b'["b"]'})]
        writer.clear()  # the stream goes with the tier's keys
        assert not reader.bus_has(first) and reader.bus_last() == b"0-0"
    finally:
        writer.close()
        reader.close()


@BOTH
def test_bus_interrupt_ends_a_blocked_read(topology):
    tier = RedisTier(url=topology.url, prefix=f"bus{next(_prefixes)}:")
    last = tier.bus_publish({b"k": b"[]"}, maxlen=10)
    outcome = []

    def read():
        started = time.monotonic()
        try:
            outcome.append(tier.bus_read(last, 1.0, 10))
        except Exception as exc:  # noqa: BLE001 - what the reader sees
            outcome.append(exc)
        outcome.append(time.monotonic() - started)

    thread = threading.Thread(target=read)
    thread.start()
    time.sleep(0.2)
    tier.bus_interrupt()
    thread.join(5)
    assert isinstance(outcome[0], redis.ConnectionError) and outcome[1] < 0.9
    assert tier.bus_read(last, 0.01, 10) == []  # the next read opens a new connection
    tier.close()


@pytest.fixture
def make(tmp_path, topology):
    """test_invalidation's ``make``, with L3 on this module's topology."""
    yield from invalidation.making(tmp_path, topology.url)


@BOTH
@pytest.mark.parametrize("scenario", [
    "test_a_write_drops_the_other_processes_l1_copy", "test_own_messages_are_not_applied",
    "test_another_hosts_l2_copy_is_dropped_too", "test_same_host_l2_is_left_alone",
    "test_bursts_are_batched", "test_clear_flushes_the_others",
    "test_a_burst_on_a_healthy_redis_is_published_whole", "test_a_forked_child_hears_the_parents_writes",
])  # fmt: skip
def test_invalidation_between_processes(make, scenario):
    getattr(invalidation, scenario)(make)


def test_a_killed_reader_connection_reconnects_without_losing_news(make, cluster):
    invalidation.killed_reader_scenario(make, [node.port for node in cluster.nodes])


# -- faults --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cluster_node_hung_costs_one_timeout_per_call_and_recovers(tmp_path):
    """A master that stops answering (SIGSTOP): calls stay fail-safe and each costs about one
    socket timeout (no retries of the timeout, one slot-map refresh); after it resumes, the
    tier is used again without a restart."""
    require_topology_tools()
    with ClusterGroup(tmp_path / "cluster").start() as group:
        tier = RedisTier(url=group.url, prefix="hung:", breaker=CircuitBreaker(cooldown=0.5))
        cache = Cache(MemoryTier(1000), tier, ttl=300)
        keys = [f"k{i}" for i in range(60)]
        cache.set_many({k: k for k in keys})
        hung = group.nodes[0]
        hung.pause()
        try:
            latencies = []
            until = time.monotonic() + 2.0
            i = 0
            while time.monotonic() < until:
                started = time.monotonic()
                assert cache.get(keys[i % 60]) == keys[i % 60]  # from L1
                assert cache.get_or_load(f"cold{i}", lambda i=i: i) == i  # L3 skipped or not
                cache.set(keys[i % 60], keys[i % 60])
                latencies.append(time.monotonic() - started)
                i += 1
        finally:
            hung.resume()
        stats = cache.stats()["tiers"]["redis"]
        assert stats["timeouts"] >= 1 and stats["breaker_transitions"] >= 1
        print(f"\ncluster, one master hung: {len(latencies)} calls, max {max(latencies) * 1000:.0f} ms")
        assert max(latencies) < 1.0  # three tier calls at most, each ~one timeout
        deadline = time.monotonic() + 20
        while True:  # back to using the tier
            before = cache.stats()["tiers"]["redis"]["sets"]
            cache.set("after", 1)
            if cache.stats()["tiers"]["redis"]["sets"] > before:
                break
            assert time.monotonic() < deadline, "the tier was not used again"
            time.sleep(0.05)
        # The writes the hung master missed are deleted from L3 by the bus once it is back (so
        # that L3 keeps nothing older than them): wait for that, then every key is served again.
        while not cache._bus.idle():
            assert time.monotonic() < deadline, "the bus did not catch up"
            time.sleep(0.05)
        cache.set_many({k: k for k in keys})
        cache.tiers[0].clear()
        assert cache.get_many(keys) == {k: k for k in keys}
        assert cache.stats()["tiers"]["redis"]["hits"] >= len(keys)
        cache.close()


def l3_sets(cache: Cache) -> int:
    return cache.stats()["tiers"]["redis"]["sets"]


@pytest.mark.slow
def test_cluster_failover_to_a_replica_keeps_serving_and_writes_resume(tmp_path):
    """3 masters with a replica each; kill the master of a key's slot (SIGKILL): calls never
    raise, the cluster promotes its replica, and writes of that key reach the new master with
    the same Cache (redis-py re-reads the slot map after the failed calls)."""
    require_topology_tools()
    with ClusterGroup(tmp_path / "cluster", replicas=1, node_timeout_ms=1000).start() as group:
        tier = RedisTier(url=group.url, prefix="cfo:", breaker=CircuitBreaker(cooldown=0.5))
        cache = Cache(MemoryTier(10_000), tier, ttl=300)
        loop = asyncio.new_event_loop()
        cached = {f"k{i}": i for i in range(50)}
        cache.set_many(cached)
        loop.run_until_complete(cache.aset("victim", "async-before"))
        slot = tier._slot(physical_key("victim"))
        old = group.owner(slot)
        promoted: list[tuple[int, float]] = []
        watcher = threading.Thread(
            target=lambda: promoted.append((group.wait_failover(slot, old), time.monotonic()))
        )
        group.node(old).kill()
        killed_at = time.monotonic()
        watcher.start()
        recovered_at = None
        i = 0
        while recovered_at is None:
            assert time.monotonic() - killed_at < 60, "writes never reached the slot again"
            key = f"k{i % 50}"
            assert cache.get_or_load(key, lambda key=key: cached[key]) == cached[key]
            assert cache.get_or_load(f"cold{i}", lambda i=i: f"loaded {i}") == f"loaded {i}"
            before = l3_sets(cache)
            cache.set("victim", i)
            if l3_sets(cache) > before:
                recovered_at = time.monotonic()
            i += 1
            time.sleep(0.005)
        watcher.join(30)
        new, promoted_at = promoted[0]
        assert admin(new).exists(tier._data(physical_key("victim"))) == 1
        before = l3_sets(cache)
        loop.run_until_complete(cache.aset("victim", "async-after"))
        assert l3_sets(cache) == before + 1
        cache.tiers[0].clear()
        assert loop.run_until_complete(cache.aget("victim")) == "async-after"
        stats = cache.stats()["tiers"]["redis"]
        print(f"\ncluster failover (breaker cooldown 0.5 s): master killed -> replica promoted "
              f"{promoted_at - killed_at:.2f} s -> first L3 write to its slot {recovered_at - killed_at:.2f} s; "
              f"{i} rounds of calls meanwhile, none raised; failures {stats['failures']}, "
              f"timeouts {stats['timeouts']}, skips {stats['skips']}")  # fmt: skip
        loop.run_until_complete(cache.aclose())
        loop.close()


@pytest.mark.slow
@pytest.mark.parametrize("cooldown", [5.0, 0.5], ids=["default-breaker", "breaker-cooldown-0.5s"])
def test_sentinel_failover_keeps_serving_and_writes_resume(tmp_path, cooldown):
    """Kill the primary (SIGKILL): calls keep answering from L1 and the loader, never raising;
    the sentinel promotes the replica; writes reach the new primary with the same Cache.
    (Replication is asynchronous: if the bus's last message did not reach the replica, the bus
    sees a gap on the new primary and flushes L1, so a key once in L1 may have to be loaded.)"""
    require_redis_server()
    with SentinelGroup(tmp_path / "sentinel").start() as group:
        tier = RedisTier(url=group.url, prefix="fo:", breaker=CircuitBreaker(cooldown=cooldown))
        cache = Cache(MemoryTier(10_000), tier, ttl=300)
        loop = asyncio.new_event_loop()
        cached = {f"k{i}": i for i in range(50)}
        cache.set_many(cached)
        loop.run_until_complete(cache.aset("async-before", 1))  # the async face has connections too
        promoted_at: list[float] = []
        watcher = threading.Thread(target=lambda: (group.wait_promoted(30), promoted_at.append(time.monotonic())))
        killed_at = group.kill_primary()
        watcher.start()
        recovered_at = None
        i = 0
        while recovered_at is None:
            assert time.monotonic() - killed_at < 60, "writes never reached Redis again"
            key = f"k{i % 50}"
            assert cache.get_or_load(key, lambda key=key: cached[key]) == cached[key]
            assert cache.get_or_load(f"cold{i}", lambda i=i: f"loaded {i}") == f"loaded {i}"
            before = l3_sets(cache)
            cache.set(f"w{i}", i)
            if l3_sets(cache) > before:
                recovered_at = time.monotonic()
            i += 1
            time.sleep(0.005)
        watcher.join(30)
        assert promoted_at and group.primary.proc is not None
        new_primary = admin(group.primary.port)
        assert new_primary.exists(b"fo:" + physical_key(f"w{i - 1}")) == 1  # on the promoted one
        before = l3_sets(cache)
        loop.run_until_complete(cache.aset("async-after", 2))
        assert l3_sets(cache) == before + 1 and new_primary.exists(b"fo:async-after") == 1
        # Reads come from the new primary too: at once, or after the breaker's cooldown if dead
        # connections to the old primary (one failure each) opened it again meanwhile.
        deadline = time.monotonic() + cooldown + 5
        while cache.lookup(f"w{i - 1}").source != "redis":
            assert time.monotonic() < deadline, "reads did not reach Redis again"
            cache.tiers[0].clear()
            time.sleep(0.05)
        cache.tiers[0].clear()
        assert cache.get(f"w{i - 1}") == i - 1 and loop.run_until_complete(cache.aget("async-after")) == 2
        stats = cache.stats()["tiers"]["redis"]
        print(f"\nsentinel failover (breaker cooldown {cooldown:g} s): primary killed -> replica "
              f"promoted {promoted_at[0] - killed_at:.2f} s -> first L3 write {recovered_at - killed_at:.2f} s; "
              f"{i} rounds of calls meanwhile, none raised; failures {stats['failures']}, "
              f"skips {stats['skips']}, dropped writes {stats['dropped_writes']}")  # fmt: skip
        loop.run_until_complete(cache.aclose())
        loop.close()


def test_readonly_reply_from_a_demoted_primary_reconnects(tmp_path):
    """The primary is demoted under a live connection (REPLICAOF, as a failover that does not
    reach this client would leave it): the write gets READONLY, redis-py closes the connection
    and raises a connection error, and the guard's one retry asks the sentinel again and
    writes to the new primary, in the same call."""
    require_redis_server()
    with SentinelGroup(tmp_path / "sentinel").start() as group:
        tier = RedisTier(url=group.url, prefix="ro:")
        cache = Cache(tier)
        cache.set("k", "before")  # a pooled connection to the primary
        old, new = admin(group.primary.port), admin(group.replica.port)
        new.replicaof("NO", "ONE")
        old.replicaof("127.0.0.1", group.replica.port)
        sentinel = admin(group.sentinel.port)
        sentinel.sentinel_remove(group.service)
        sentinel.sentinel_monitor(group.service, "127.0.0.1", group.replica.port, 1)
        with pytest.raises(redis.ReadOnlyError):
            old.set(b"ro:probe", b"1")  # the old primary refuses writes now
        cache.set("k", "after")
        stats = cache.stats()["tiers"]["redis"]
        assert (stats["failures"], stats["retries"], stats["dropped_writes"]) == (1, 1, 0)
        assert new.exists(b"ro:k") == 1 and cache.get("k") == "after"
        # the async face too
        async def main():
            await cache.aset("a", 1)
            old.replicaof("NO", "ONE")  # (flip back: the async connection now points at `new`)
            new.replicaof("127.0.0.1", group.primary.port)
            sentinel.sentinel_remove(group.service)
            sentinel.sentinel_monitor(group.service, "127.0.0.1", group.primary.port, 1)
            await cache.aset("a", 2)
            assert await cache.aget("a") == 2
            await cache.aclose()

        asyncio.run(main())
        stats = cache.stats()["tiers"]["redis"]
        assert (stats["failures"], stats["retries"], stats["dropped_writes"]) == (2, 2, 0)
