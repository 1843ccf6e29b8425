"""MemoryTier under free concurrent use from many threads (both twins)."""

from __future__ import annotations

import random
import sys
import threading
import time

import pytest

from mlcache.testing import FakeClock

THREADS = 8
OPS = 20_000


class SlowKey:
    """A key whose __hash__ and __eq__ run Python code and yield the GIL mid-comparison."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __hash__(self) -> int:
        return self.n % 5

    def __eq__(self, other: object) -> bool:
        time.sleep(0)  # let another thread in while a lookup is in flight
        return isinstance(other, SlowKey) and other.n == self.n


@pytest.fixture(autouse=True)
def fast_switching():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def run_threads(target, n=THREADS, timeout=120):
    errors: list[BaseException] = []

    def guarded(i):
        try:
            target(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "a thread hung (deadlock?)"
    assert not errors, errors[:3]


@pytest.mark.parametrize("policy", ["lru", "fifo", "lfu"])
def test_mixed_ops_keep_invariants(impl, policy):
    """8 threads x 20k mixed ops with evictions and expiry: values never cross keys, size never
    exceeds maxsize, and the structure passes its self-check at the end."""
    clock = FakeClock()
    tier = impl.MemoryTier(maxsize=64, policy=policy, timer=clock)
    keyspace = [i for i in range(120)] + [f"s{i}" for i in range(40)] + [SlowKey(i) for i in range(40)]
    gets = [0] * THREADS
    max_seen = [0]

    def worker(i):
        rng = random.Random(i)
        for n in range(OPS):
            key = rng.choice(keyspace)
            r = rng.random()
            if r < 0.5:
                value = tier.get(key)
                gets[i] += 1
                if value is not None:
                    assert value[0] == key or (isinstance(key, SlowKey) and value[0] == key.n), (
                        key,
                        value,
                    )
            elif r < 0.85:
                tag = key.n if isinstance(key, SlowKey) else key
                tier.set(key, (tag, n), ttl=rng.choice([None, 0.5, 5.0]))
            elif r < 0.97:
                tier.delete(key)
            elif r < 0.99:
                clock.advance(0.1)
            else:
                tier.expire()
            if n % 256 == 0:
                max_seen[0] = max(max_seen[0], len(tier))

    run_threads(worker)
    tier._check()
    assert len(tier) <= 64 and max_seen[0] <= 64
    stats = tier.stats()
    assert stats["hits"] + stats["misses"] == sum(gets)
    assert stats["evictions"] > 0


def test_no_lost_entries(impl):
    """Threads writing disjoint keys into a tier big enough for all: every write survives."""
    tier = impl.MemoryTier(maxsize=THREADS * 3000)

    def worker(i):
        for n in range(3000):
            tier.set((i, n), n)
            if n % 3 == 0:
                tier.set((i, n), -n)  # overwrite

    run_threads(worker)
    tier._check()
    assert len(tier) == THREADS * 3000
    for i in range(THREADS):
        for n in range(3000):
            assert tier.get((i, n)) == (-n if n % 3 == 0 else n)


class SpreadSlowKey(SlowKey):
    def __hash__(self) -> int:
        return hash(self.n)


def test_concurrent_growth_with_python_keys(impl):
    """Growth (rehash) while other threads compare keys that run Python code."""
    tier = impl.MemoryTier(maxsize=100_000)

    def worker(i):
        for n in range(2000):
            tier.set(SpreadSlowKey(i * 10_000 + n), n)
            assert tier.get(SpreadSlowKey(i * 10_000 + n // 2)) == n // 2

    run_threads(worker, n=4)
    tier._check()
    assert len(tier) == 4 * 2000


def test_clear_races_with_writers(impl):
    tier = impl.MemoryTier(maxsize=500)
    stop = threading.Event()

    def worker(i):
        if i == 0:
            for _ in range(300):
                tier.clear()
            stop.set()
            return
        n = 0
        while not stop.is_set():
            tier.set((i, n % 700), n)
            tier.get((i, (n * 7) % 700))
            n += 1

    run_threads(worker, n=4)
    tier._check()


def test_clear_races_with_lock_free_readers(impl):
    """#15: a reader that found an entry before a concurrent clear() and logs the read after it
    must not make the next drain index past the new, shorter slot list (the pure twin raised
    IndexError out of get/set). Entries carry TTLs and the clock moves, so expiry runs too."""
    clock = FakeClock()
    tier = impl.MemoryTier(maxsize=128, timer=clock)
    stop = threading.Event()
    reads = [0] * 4
    max_seen = [0]

    def worker(i):
        if i == 0:
            try:
                for n in range(300):
                    tier.clear()
                    if n % 10 == 0:
                        clock.advance(1.0)
                    time.sleep(0.0005)  # let the others refill the tier
            finally:
                stop.set()
            return
        rng = random.Random(i)
        while not stop.is_set():
            for key in range(160):
                if i == 1:  # the writer
                    tier.set(key, key, ttl=rng.choice([None, 0.5, 5.0]))
                else:  # readers, which take no lock
                    tier.get(key) if key % 2 else tier.get_entry(key)
                    reads[i] += 1
            max_seen[0] = max(max_seen[0], len(tier))

    run_threads(worker, n=4, timeout=60)
    tier._check()
    assert len(tier) <= 128 and max_seen[0] <= 128
    stats = tier.stats()
    assert stats["hits"] + stats["misses"] == sum(reads)


def test_colliding_python_keys_make_progress(impl):
    """Long probe runs of keys whose __eq__ yields the GIL, mutated by every thread at once:
    lookups that restart after a concurrent change still finish (no livelock)."""

    class SameHash(SlowKey):
        def __hash__(self) -> int:
            return 1

    tier = impl.MemoryTier(maxsize=1000)
    for n in range(100):
        tier.set(SameHash(n), n)

    def worker(i):
        rng = random.Random(i)
        for n in range(300):
            key = SameHash(rng.randrange(120))
            if n % 2:
                tier.set(key, key.n)
            elif n % 3 == 0:
                tier.delete(key)
            else:
                value = tier.get(key)
                assert value is None or value == key.n

    run_threads(worker, n=4, timeout=90)
    tier._check()
