"""Single-flight, leases and freshness (stampede protection), against real tiers."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from conftest import HeldLoad
from mlcache import Cache, LockTimeout, MemoryTier, ReentrantLoadError, SerializationError
from mlcache.testing import FakeClock
from mlcache.tiers.base import physical_key

pytestmark = pytest.mark.timeout(120)

STAMPEDE_COMBOS = ["L1", "L1+L2", "L1+L3", "L1+L2+L3", "L2+L3", "L3"]


def slow_loader(calls, value="v", delay=0.05):
    def load():
        calls.append(threading.get_ident())
        time.sleep(delay)
        return value

    return load


def run_threads(n, target):
    results, errors = [None] * n, []
    barrier = threading.Barrier(n)

    def worker(i):
        barrier.wait(10)
        try:
            results[i] = target(i)
        except BaseException as exc:  # noqa: BLE001 - checked by the caller
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), "a caller hung"
    return results, errors


@pytest.mark.parametrize("combo", STAMPEDE_COMBOS)
def test_64_threads_one_cold_key_one_load(build, combo):
    cache = build(combo)
    calls = []
    results, errors = run_threads(64, lambda i: cache.get_or_load("cold", slow_loader(calls, "v")))
    assert not errors
    assert len(calls) == 1 and results == ["v"] * 64
    stats = cache.stats()
    assert stats["loads"] == 1 and stats["waits"] + stats["loads"] <= 64


@pytest.mark.parametrize("combo", STAMPEDE_COMBOS)
def test_64_tasks_one_cold_key_one_load(build, combo):
    cache = build(combo).cache
    calls = []

    async def load():
        calls.append(1)
        await asyncio.sleep(0.05)
        return "v"

    async def main():
        results = await asyncio.gather(*[cache.aget_or_load("cold", load) for _ in range(64)])
        await cache.aclose()
        return results

    assert asyncio.run(main()) == ["v"] * 64
    assert len(calls) == 1


def test_threads_and_tasks_share_one_flight(build):
    cache = build("L1+L2").cache
    calls = []
    started = threading.Event()

    def load():
        calls.append(1)
        started.set()
        time.sleep(0.2)
        return "shared"

    async def from_a_task():
        started.wait(10)
        return await cache.aget_or_load("k", load)

    result = []
    thread = threading.Thread(target=lambda: result.append(cache.get_or_load("k", load)))
    thread.start()
    assert asyncio.run(from_a_task()) == "shared"
    thread.join(10)
    assert result == ["shared"] and len(calls) == 1


def test_leader_exception_reaches_every_waiter_and_is_not_cached(build):
    cache = build("L1+L2+L3")
    calls = []

    def failing():
        calls.append(1)
        time.sleep(0.05)
        raise LookupError("database down")

    results, errors = run_threads(16, lambda i: cache.get_or_load("k", failing))
    assert len(calls) == 1
    assert len(errors) == 16 and all(isinstance(e, LookupError) for e in errors)
    assert cache.get_or_load("k", lambda: "recovered") == "recovered"  # loads afresh


def test_cancelled_leader_task_does_not_strand_waiters(build):
    cache = build("L1+L3").cache
    calls = []

    async def load():
        calls.append(1)
        await asyncio.sleep(0.2)
        return f"load {len(calls)}"

    async def main():
        leader = asyncio.create_task(cache.aget_or_load("k", load))
        while not calls:  # the leader is loading (on a loaded machine, not after a fixed time)
            await asyncio.sleep(0.005)
        waiters = [asyncio.create_task(cache.aget_or_load("k", load)) for _ in range(8)]
        await asyncio.sleep(0.05)
        leader.cancel()
        results = await asyncio.wait_for(asyncio.gather(*waiters), 10)
        with pytest.raises(asyncio.CancelledError):
            await leader
        await cache.aclose()
        return results

    results = asyncio.run(main())
    assert len(calls) == 2  # the cancelled load, and one takeover
    assert results == ["load 2"] * 8


@pytest.mark.parametrize("combo", ["L1", "L1+L2+L3"])
def test_reentrant_load_raises_instead_of_deadlocking(build, combo):
    cache = build(combo)

    def loader():
        return cache.cache.get_or_load("self", loader)

    with pytest.raises(ReentrantLoadError, match="asked for 'self' again"):
        cache.get_or_load("self", loader)

    def a():
        return cache.cache.get_or_load("b", b)

    def b():
        return cache.cache.get_or_load("a", a)

    with pytest.raises(ReentrantLoadError):
        cache.get_or_load("a", a)
    assert cache.get_or_load("self", lambda: "fine now") == "fine now"


def test_reentrant_async_load_raises(build):
    cache = build("L1").cache

    async def loader():
        return await cache.aget_or_load("self", loader)

    async def main():
        with pytest.raises(ReentrantLoadError):
            await asyncio.wait_for(cache.aget_or_load("self", loader), 5)

    asyncio.run(main())


def test_other_keys_inside_a_loader_are_fine(build):
    cache = build("L1+L2")
    assert cache.get_or_load("outer", lambda: cache.cache.get_or_load("inner", lambda: 1) + 1) == 2


@pytest.mark.parametrize("policy", ["load", "stale", "raise"])
def test_lock_timeout_policies(build, policy):
    clock = FakeClock()
    cache = build("L1+L2", lock_timeout=0.2, on_lock_timeout=policy, timer=clock, ttl=10,
                  stale_if_error=100)  # fmt: skip
    cache.set("k", "old")
    clock.advance(11)  # expired, but within the stale-if-error window
    release = threading.Event()

    def slow():
        release.wait(10)
        return "slow"

    leader = threading.Thread(target=lambda: cache.get_or_load("k", slow))
    leader.start()
    time.sleep(0.05)
    try:
        if policy == "raise":
            with pytest.raises(LockTimeout):
                cache.get_or_load("k", lambda: "mine")
        elif policy == "stale":
            assert cache.cache.lookup("k", lambda: "mine") == ("old", "memory", True)
        else:
            assert cache.get_or_load("k", lambda: "mine") == "mine"
    finally:
        release.set()
        leader.join(10)
    assert cache.stats()["lock_timeouts"] == 1


def test_load_in_flight_then_delete_here_leaves_no_old_value(build):
    cache = build("L1+L2+L3")
    _assert_delete_during_load_wins(cache, lambda: cache.delete("k"))


def test_load_in_flight_then_delete_in_another_process(build, shared_redis, tmp_path):
    from workers import Worker

    cache = build("L1+L2+L3", redis=shared_redis)
    other = Worker({
        "memory": {"maxsize": 10},
        "disk": {"directory": str(tmp_path / "l2")},
        "redis": {"url": cache.cache.tiers[2].url, **shared_redis},
    })  # fmt: skip
    try:
        _assert_delete_during_load_wins(cache, lambda: other("delete", "k"))
    finally:
        other.close()


def _assert_delete_during_load_wins(cache, delete):
    in_loader, release = threading.Event(), threading.Event()

    def loader():
        in_loader.set()
        release.wait(10)
        return "old value"

    result = []
    thread = threading.Thread(target=lambda: result.append(cache.get_or_load("k", loader)))
    thread.start()
    assert in_loader.wait(10)
    delete()
    release.set()
    thread.join(10)
    assert result == ["old value"]  # returned to its caller ...
    memory, disk, redis_tier = cache.cache.tiers
    pk = physical_key("k")
    assert memory.get("k") is None and disk.get(pk) is None and redis_tier.get(pk) is None
    assert cache.get("k", "absent") == "absent"  # ... but cached nowhere
    assert cache.stats()["uncached_loads"] == 1


def test_set_during_load_wins_over_the_load(build):
    cache = build("L2+L3")
    load = HeldLoad(cache, "k")
    cache.set("k", "written")
    load.release()
    assert load.result == ["loaded"] and cache.get("k") == "written"


def test_xfetch_probability_rises_towards_expiry():
    import random

    clock = FakeClock(0.0)
    cache = Cache(MemoryTier(10, timer=clock), ttl=100, beta=1.0, timer=clock,
                  random=random.Random(7).random)  # fmt: skip
    cache.get_or_load("k", lambda: "v")
    entry = cache.tiers[0].get_entry("k")
    load_time = 5.0  # pinned: what the loader's measured duration would be
    rates = []
    for remaining in (40, 20, 10, 5, 2, 0.5):
        refreshes = 0
        for _ in range(400):
            fresh = type(entry)(entry.value, clock() + remaining, clock() + remaining, load_time)
            refreshes += not cache._serve_fresh(fresh, clock())
        rates.append(refreshes / 400)
    assert rates[0] < 0.01 and rates[-1] > 0.85
    assert rates == sorted(rates)


def test_xfetch_refreshes_at_most_once_among_concurrent_readers(build):
    clock = FakeClock()
    cache = build("L1+L2", timer=clock, ttl=10, beta=1.0, random=lambda: 0.999999)
    calls = []

    def load():
        calls.append(1)
        time.sleep(0.1)
        return len(calls)

    cache.get_or_load("k", load)
    entry = cache.cache.tiers[0].get_entry("k")
    assert entry.load_time >= 0.09
    clock.advance(9.5)  # close to expiry: every reader is picked to refresh early
    results, errors = run_threads(32, lambda i: cache.get_or_load("k", load))
    assert not errors
    assert len(calls) == 2  # the first load, and one early refresh
    assert set(results) <= {1, 2}  # the others kept getting the cached (still fresh) value
    assert cache.stats()["early_refreshes"] == 1


@pytest.mark.parametrize("face", ["sync", "async"])
def test_stale_while_revalidate_serves_old_and_refreshes_once(build, face):
    clock = FakeClock()
    cache = build("L1+L2+L3", timer=clock, ttl=10, stale_ttl=30, beta=0, face=face)
    calls = []

    def load():
        calls.append(1)
        time.sleep(0.1)
        return f"v{len(calls)}"

    cache.get_or_load("k", load)
    clock.advance(15)  # stale, inside the window
    if face == "sync":
        results, errors = run_threads(16, lambda i: cache.cache.lookup("k", load))
        assert not errors
    else:
        async def main():
            out = await asyncio.gather(*[cache.cache.alookup("k", load) for _ in range(16)])
            await asyncio.sleep(0.3)  # let the background refresh finish on this loop
            return out

        results = cache.loop.run_until_complete(main())
    # Served at once: the old value (stale), or the new one for callers that read after the
    # refresh landed (an async caller can, while it awaits L2/L3).
    assert all((r.value, r.stale) in {("v1", True), ("v2", False)} for r in results)
    assert ("v1", "memory", True) in results  # the flight's leader; the others waited for it
    deadline = time.monotonic() + 5
    while cache.get("k") != "v2":
        assert time.monotonic() < deadline, "the background refresh never landed"
        time.sleep(0.01)
    assert len(calls) == 2
    stats = cache.stats()
    assert stats["background_refreshes"] == 1
    assert stats["stale_served"] == sum(r.stale for r in results)


def test_stale_if_error_serves_old_value_within_its_window(build):
    clock = FakeClock()
    cache = build("L1+L2", timer=clock, ttl=10, stale_if_error=60, beta=0)
    cache.get_or_load("k", lambda: "good")

    def broken():
        raise ConnectionError("backend down")

    clock.advance(30)
    assert cache.cache.lookup("k", broken) == ("good", "memory", True)
    clock.advance(40)  # past expiry + stale_if_error
    with pytest.raises(ConnectionError):
        cache.get_or_load("k", broken)


def test_stale_serves_and_null_hits_are_counted_on_the_tier_that_served_them(build):
    clock = FakeClock()
    cache = build("L1+L2", timer=clock, ttl=10, null_ttl=300, stale_if_error=60, beta=0)
    cache.get_or_load("k", lambda: "good")
    cache.get_or_load("none", lambda: None)

    def broken():
        raise ConnectionError("backend down")

    clock.advance(30)
    cache.cache.tiers[0].clear()  # the stale copy is L2's now
    assert cache.cache.lookup("k", broken) == ("good", "disk", True)
    assert cache.get_or_load("none", broken) is None and cache.get("none") is None
    tiers = cache.stats()["tiers"]
    assert (tiers["disk"]["stale_served"], tiers["memory"]["stale_served"]) == (1, 0)
    assert (tiers["disk"]["null_hits"], tiers["memory"]["null_hits"]) == (1, 1)  # copied up
    assert cache.stats()["stale_served"] == 1


def test_lookup_tells_how_a_value_was_served(build):
    cache = build("L1+L2+L3")
    assert cache.cache.lookup("k") == (None, "miss", False)
    assert cache.cache.lookup("k", lambda: 1) == (1, "load", False)
    assert cache.cache.lookup("k", lambda: 2) == (1, "memory", False)
    cache.cache.tiers[0].clear()
    assert cache.cache.lookup("k", lambda: 2) == (1, "disk", False)
    cache.cache.tiers[0].clear()
    cache.cache.tiers[1].clear()
    assert cache.cache.lookup("k") == (1, "redis", False)


def test_waiting_costs_a_bounded_number_of_redis_commands(build, redis_server):
    """Another process holds the lease: this process's leader waits in XREAD, not polling."""
    from mlcache import Entry

    cache = build("L1+L3", invalidation=False)  # (the bus's own commands are not the point)
    tier = cache.cache.tiers[1]
    pk = physical_key("k")
    assert tier.lease_acquire(pk, b"other-process", 10) is None  # as if another process loads
    with MonitoredCommands(redis_server.port) as seen:
        result = []
        thread = threading.Thread(target=lambda: result.append(cache.get_or_load("k", lambda: "mine")))
        thread.start()
        time.sleep(1.5)  # the waiter is blocked all this time
        assert not result
        waiter_commands = list(seen)
        data = tier.format.pack(pk, Entry("theirs", time.time() + 60), time.time())
        assert tier.set_under_lease(pk, data, 60, b"other-process")  # the holder finishes
        thread.join(10)
    assert result == ["theirs"]
    # GET (miss), the lease script (taken), XREAD (1 s, times out), the script, XREAD (woken) ...
    assert [c for c in waiter_commands if c != "HELLO"] == ["GET", "EVALSHA", "XREAD", "EVALSHA", "XREAD"]
    # ... then, besides the holder's script, only GET (the value): nothing to pass the wake-up on
    holder_commands = {"HELLO", "SCRIPT", "EVALSHA"}
    assert [c for c in seen[len(waiter_commands):] if c not in holder_commands] == ["GET"]


class MonitoredCommands:
    """The commands clients send to a Redis server (not those run inside scripts), in order,
    as MONITOR reports them."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.commands: list[str] = []

    def __enter__(self):
        import socket

        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        self.sock.sendall(b"MONITOR\r\n")
        self.file = self.sock.makefile("rb")
        assert self.file.readline().startswith(b"+OK")
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        return self.commands

    def _read(self):
        try:
            for line in self.file:
                # +<time> [<db> <client or "lua">] "COMMAND" "arg" ...
                where, _, rest = line.decode(errors="replace").partition("] ")
                if not where.endswith(" lua") and rest:
                    self.commands.append(rest.split(" ", 1)[0].strip('"').upper())
        except (OSError, ValueError):  # closed: done
            pass

    def __exit__(self, *exc):
        time.sleep(0.2)
        self.sock.close()
        self.thread.join(5)


# -- refreshes never make callers wait; races of loads with writes --------------------------


def test_stale_while_revalidate_never_waits_for_the_refresh(build):
    clock = FakeClock()
    cache = build("L1+L2", timer=clock, ttl=10, stale_ttl=30, beta=0, lock_timeout=30)
    refreshing, release = threading.Event(), threading.Event()
    calls = []

    def load():
        calls.append(1)
        if len(calls) > 1:
            refreshing.set()
            release.wait(20)
        return f"v{len(calls)}"

    cache.get_or_load("k", load)
    clock.advance(15)  # stale, inside the window
    try:
        results, errors = run_threads(16, lambda i: cache.cache.lookup("k", load))
        assert refreshing.wait(10)
        late = cache.cache.lookup("k", load)  # while the refresh is still held up
    finally:
        release.set()
    assert not errors
    # Every caller got the old value while the refresh was held up (at most after a wait for
    # the flight that read the lower tiers), none waited for the refresh itself.
    assert {(r.value, r.stale) for r in results} == {("v1", True)}
    assert late == ("v1", "memory", True)  # no I/O at all while a refresh runs
    deadline = time.monotonic() + 10
    while cache.get("k") != "v2":
        assert time.monotonic() < deadline, "the background refresh never landed"
        time.sleep(0.01)
    assert len(calls) == 2 and cache.stats()["background_refreshes"] == 1


def test_stale_while_revalidate_async_never_waits_for_the_refresh(build):
    clock = FakeClock()
    cache = build("L1+L2", timer=clock, ttl=10, stale_ttl=30, beta=0, lock_timeout=30)
    calls = []

    async def main():
        gate = asyncio.Event()

        async def load():
            calls.append(1)
            if len(calls) > 1:
                await gate.wait()
            return f"v{len(calls)}"

        await cache.cache.aget_or_load("k", load)
        clock.advance(15)
        served = await asyncio.wait_for(
            asyncio.gather(*[cache.cache.alookup("k", load) for _ in range(16)]), 10
        )
        gate.set()
        await cache.cache.aclose()  # waits for the background refresh on this loop
        return served

    served = asyncio.run(main())
    assert {(r.value, r.stale) for r in served} == {("v1", True)}
    assert len(calls) == 2


def test_no_refresh_starts_after_close_and_none_is_left_claimed():
    clock = FakeClock()
    cache = Cache(MemoryTier(10, timer=clock), ttl=10, stale_ttl=30, beta=0, timer=clock)
    cache.get_or_load("k", lambda: "old")
    cache.close()
    clock.advance(15)
    assert cache.lookup("k", lambda: "new") == ("old", "memory", True)
    assert not cache._flights.refreshing("k")
    assert cache.stats()["loads"] == 1


def test_lock_timeout_stale_policy_loads_when_there_is_nothing_stale(tmp_path):
    from mlcache import DiskTier

    # Two caches on one L2: separate processes as far as single-flight is concerned.
    holder = Cache(DiskTier(tmp_path), invalidation=False)
    waiter = Cache(DiskTier(tmp_path), lock_timeout=0.2, on_lock_timeout="stale", invalidation=False)
    in_loader, release = threading.Event(), threading.Event()

    def slow():
        in_loader.set()
        release.wait(10)
        return "slow"

    thread = threading.Thread(target=lambda: holder.get_or_load("k", slow))
    thread.start()
    try:
        assert in_loader.wait(10)
        assert waiter.lookup("k", lambda: "mine") == ("mine", "load", False)
    finally:
        release.set()
        thread.join(10)
        holder.close()
        waiter.close()
    assert waiter.stats()["lock_timeouts"] == 1


class _LeaselessDisk:
    """A DiskTier whose lease operations fail (its writes stay real), and whose writes can be
    held up: the no-lease path of a load, racing a delete."""

    @staticmethod
    def make(directory, hold):
        from mlcache import DiskTier

        class Tier(DiskTier):
            def lease_acquire(self, key, token, ttl):
                raise OSError("lease table unavailable")

            def set_many(self, items):
                hold()
                return super().set_many(items)

        return Tier(directory)


def test_load_without_a_lease_racing_a_delete_leaves_no_old_value(tmp_path):
    entered, release = threading.Event(), threading.Event()

    def hold():
        if threading.current_thread().name == "loader":
            entered.set()
            release.wait(10)

    cache = Cache(MemoryTier(10), _LeaselessDisk.make(tmp_path, hold), invalidation=False)
    result = []
    thread = threading.Thread(target=lambda: result.append(cache.get_or_load("k", lambda: "OLD")), name="loader")
    thread.start()
    assert entered.wait(10)  # loaded, and about to write L2
    assert cache.delete("k") is False
    release.set()
    thread.join(10)
    assert result == ["OLD"]
    assert cache.get("k", "absent") == "absent"
    assert cache._remote[0].tier.get(physical_key("k")) is None
    assert cache.stats()["uncached_loads"] == 1
    cache.close()


def test_cancelled_write_through_releases_the_lease_and_undoes_l2(build, tmp_path):
    from mlcache import DiskTier

    entered = threading.Event()

    class SlowDisk(DiskTier):
        def set_many(self, items):
            entered.set()
            time.sleep(0.5)
            return super().set_many(items)

    redis_tier = build("L3").cache.tiers[0]  # a private prefix on the session's server
    slow = SlowDisk(tmp_path / "slow")
    cache = Cache(MemoryTier(10), slow, redis_tier, invalidation=False)

    async def main():
        task = asyncio.create_task(cache.aget_or_load("k", lambda: "v"))
        while not entered.is_set():  # loaded, and writing L2 (above the lease tier)
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await cache.aclose()

    asyncio.run(main())
    pk = physical_key("k")
    assert redis_tier.lease_acquire(pk, b"another", 5) is None  # the lease was released
    redis_tier.lease_release(pk, b"another")
    assert slow.get(pk) is None and redis_tier.get(pk) is None  # L2's write was undone


def test_a_loaded_value_the_l3_codec_cannot_encode_is_still_served_and_cached_above(build):
    import collections
    import datetime

    cache = build("L1+L2+L3")  # no secret: L3 uses msgpack, which keeps no OrderedDict
    value = {"at": datetime.datetime(2024, 1, 1), "tags": collections.OrderedDict(a=1)}
    calls = []

    def load():
        calls.append(1)
        return value

    assert cache.get_or_load("k", load) == value
    assert cache.get_or_load("k", load) == value and len(calls) == 1
    assert cache.cache.tiers[2].get(physical_key("k")) is None  # skipped, counted
    assert cache.stats()["tiers"]["redis"]["unencodable"] == 1
    with pytest.raises(SerializationError):
        cache.set("k2", value)  # a caller's own write still refuses, changing nothing


def test_a_null_hit_is_counted_once(build):
    cache = build("L2")
    cache.get_or_load("k", lambda: None)
    before = cache.stats()["null_hits"]
    assert cache.get_or_load("k", lambda: "x") is None
    assert cache.stats()["null_hits"] == before + 1


@pytest.mark.parametrize("combo", ["L1+L2", "L1+L3"])
def test_a_load_longer_than_the_lease_keeps_it_and_is_cached(build, shared_redis, combo):
    first = build(combo, redis=shared_redis, lease_ttl=0.3, lock_timeout=10)
    other = build(combo, redis=shared_redis, lease_ttl=0.3, lock_timeout=10)  # another process
    if "L2" in combo:
        other = build(combo, disk={"directory": first.cache.tiers[1].directory}, lease_ttl=0.3,
                      lock_timeout=10)  # fmt: skip
    calls, in_loader = [], threading.Event()

    def slow():
        calls.append(1)
        in_loader.set()
        time.sleep(1.2)  # four lease lifetimes
        return "slow"

    thread = threading.Thread(target=lambda: first.get_or_load("k", slow))
    thread.start()
    assert in_loader.wait(10)
    time.sleep(0.6)  # the lease would have expired twice by now
    assert other.get_or_load("k", slow) == "slow"  # waited for it, did not load again
    thread.join(10)
    assert len(calls) == 1
    assert first.stats()["uncached_loads"] == 0
    assert first.cache.tiers[1].get(physical_key("k")) is not None  # cached in the lease tier


def test_by_default_a_dead_holders_lease_runs_out_before_the_waiters_give_up():
    """A live holder's lease is renewed, so ``lease_ttl`` only bounds a dead holder's hold: it
    must end before ``lock_timeout``, or every waiter of the dead holder loads at once."""
    cache = Cache(MemoryTier(10))
    assert cache.lease_ttl + 1.0 <= cache.lock_timeout  # (about 1 s: lease_wait's slice)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork()")
def test_a_forked_child_does_not_wait_for_the_parents_flights(build):
    import os

    cache = build("L1", lock_timeout=20, on_lock_timeout="raise")
    load = HeldLoad(cache, "k", "parent")  # a flight of "k" is in progress at fork time
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's flight has no thread here, nobody would land it
        try:
            try:
                answer = cache.get_or_load("k", lambda: "child")
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                answer = type(exc).__name__
            os.write(writer, answer.encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    load.release()
    assert answer == "child"  # (waiting on the parent's flight: LockTimeout after 20 s)
