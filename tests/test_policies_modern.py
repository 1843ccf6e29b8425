"""SIEVE, S3-FIFO and W-TinyLFU: inside MemoryTier (both twins), against hand-computed
sequences, and compiled vs pure through the slot protocol with structural checks after every
step."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import COMPILED, PURE
from mlcache.policies.wtinylfu import CountMinSketch
from mlcache.testing import FakeClock

NEW = ["sieve", "s3fifo", "wtinylfu"]


@pytest.mark.parametrize("policy", NEW)
def test_tier_smoke(impl, policy):
    clock = FakeClock(0.0)
    tier = impl.MemoryTier(maxsize=7, policy=policy, timer=clock)
    assert tier.policy == policy
    for i in range(1000):
        tier.set(i, i, ttl=5.0 if i % 7 == 0 else None)
        if i % 3:
            tier.get(i // 2)
        if i % 11 == 0:
            tier.delete(i - 3)
        if i % 50 == 0:
            clock.advance(10.0)
        assert len(tier) <= 7
        tier._check()
    assert tier.get(999) == 999
    tier.clear()
    tier._check()
    tier.set("a", 1)
    assert tier.get("a") == 1 and len(tier) == 1
    tier._check()


@pytest.mark.parametrize("policy", NEW)
def test_tier_of_one(impl, policy):
    tier = impl.MemoryTier(maxsize=1, policy=policy)
    for k in "abcab":
        tier.set(k, k)
        tier.get(k)
        assert tier.keys() == [k]
        tier._check()


def test_sieve_keeps_visited_entries(impl):
    # a, b, c; hit a; d: the hand clears a's bit and evicts b; e evicts c; f evicts d (the
    # hand's position after c), as in the paper's figure.
    tier = impl.MemoryTier(maxsize=3, policy="sieve")
    for k in "abc":
        tier.set(k, k)
    tier.get("a")
    tier.set("d", "d")
    assert sorted(tier.keys()) == ["a", "c", "d"]
    tier.set("e", "e")
    assert sorted(tier.keys()) == ["a", "d", "e"]
    tier.set("f", "f")
    assert sorted(tier.keys()) == ["a", "e", "f"]


def test_s3fifo_one_hit_wonders_leave_first(impl):
    # 20 entries: small queue 2, main 18. Keys hit twice while small move to main and
    # survive a scan of one-hit wonders.
    tier = impl.MemoryTier(maxsize=20, policy="s3fifo")
    for i in range(20):
        tier.set(i, i)
    for i in range(20, 30):  # evictions start: hot keys enter small, get hit twice
        tier.set(i, i)
        tier.get(i)
        tier.get(i)
    for i in range(1000, 1200):
        tier.set(i, i)
    assert set(range(20, 28)) <= set(tier.keys())
    tier._check()


def test_s3fifo_ghost_hit_goes_to_main(impl):
    # 20 entries: small queue 2, main 18, ghost 18. Before the first eviction a full small
    # queue spills into main; the first victim comes from small and leaves its hash in the
    # ghost; when that hash comes back it is inserted into main.
    policy = impl.POLICIES["s3fifo"](20)
    assert (policy.small_max, policy.main_max) == (2, 18)
    policy.call("grow", 20)
    for slot in range(20):
        policy.call("on_insert", slot, 100 + slot)
    small, main, _, ghost = policy.state()
    assert small == [0, 1] and main == list(range(2, 20)) and ghost == []
    victim = policy.call("evict")
    assert victim == 0 and policy.state()[3] == [100]
    policy.call("on_insert", victim, 100)  # the evicted key is back: a ghost hit
    small, main, _, ghost = policy.state()
    assert small == [1] and main[-1] == 0 and ghost == []
    policy.check(set(range(20)))


def test_wtinylfu_frequent_entry_survives_a_scan(impl):
    tier = impl.MemoryTier(maxsize=100, policy="wtinylfu")
    for _ in range(20):
        for k in range(10):
            tier.set(k, k)
            tier.get(k)
    for k in range(1000, 1300):  # a scan of keys seen once (too short to age the sketch)
        tier.set(k, k)
    assert set(range(10)) <= set(tier.keys())
    tier._check()


def test_count_min_sketch_saturates_and_ages():
    sketch = CountMinSketch(16, sample=40)
    assert sketch.width == 16
    for _ in range(20):
        sketch.add(12345)
    assert sketch.frequency(12345) == 15  # 4-bit counters saturate
    assert sketch.additions == 15  # additions that raised no counter are not counted
    for h in range(25):
        sketch.add(h * 7919)
    assert sketch.additions < 40  # the 40th addition halved everything
    assert sketch.frequency(12345) <= 8


# -- compiled vs pure, through the slot protocol -----------------------------------------------

OPS = st.lists(
    st.tuples(st.sampled_from(["access", "access", "access", "remove"]), st.integers(0, 30)),
    max_size=150,
)


@pytest.mark.skipif(COMPILED is None, reason="the compiled extension is not built")
@pytest.mark.parametrize("name", NEW)
@given(maxsize=st.integers(1, 25), ops=OPS, hashes=st.sampled_from([1, 7, 2**61 - 1]))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_policies_agree_slot_for_slot(name, maxsize, ops, hashes):
    """Drive both twins of a policy as a storage would (evict-before-insert, removals of any
    slot, ``grow`` by doubling); after every step they must be in the same state and whole."""
    compiled = _Storage(COMPILED.POLICIES[name](maxsize), maxsize, hashes)
    pure = _Storage(PURE.POLICIES[name](maxsize), maxsize, hashes)
    for op, key in ops:
        assert compiled.apply(op, key) == pure.apply(op, key)
        assert compiled.policy.state() == pure.policy.state()
        compiled.policy.check(set(compiled.slots.values()))
        pure.policy.check(set(pure.slots.values()))


class _Storage:
    """A minimal slot storage, as MemoryTier and the simulator use a policy."""

    def __init__(self, policy, maxsize: int, multiplier: int) -> None:
        self.policy, self.maxsize, self.multiplier = policy, maxsize, multiplier
        self.slots: dict[int, int] = {}
        self.free: list[int] = []
        self.capacity = 0

    def apply(self, op: str, key: int):
        slot = self.slots.get(key)
        if op == "remove":
            if slot is not None:
                self.policy.call("on_remove", slot)
                self.free.append(self.slots.pop(key))
            return slot
        if slot is not None:
            self.policy.call("on_hit" if key % 2 else "on_update", slot)
            return slot
        if len(self.slots) >= self.maxsize:
            victim = self.policy.call("evict")
            del self.slots[next(k for k, s in self.slots.items() if s == victim)]
            self.free.append(victim)
        if not self.free:
            new = min(self.maxsize, max(2, 2 * self.capacity))
            self.policy.call("grow", new)
            self.free.extend(range(new - 1, self.capacity - 1, -1))
            self.capacity = new
        slot = self.slots[key] = self.free.pop()
        # hashes collide (multiplier 1 keeps small keys; others spread them, some negative)
        self.policy.call("on_insert", slot, (key * self.multiplier) % 97 - 48)
        return slot


@pytest.mark.skipif(COMPILED is None, reason="the compiled extension is not built")
@pytest.mark.parametrize("name", NEW)
@given(
    maxsize=st.integers(1, 12),
    ops=st.lists(st.tuples(st.sampled_from(["get", "set", "delete"]), st.integers(0, 25)),
                 max_size=200),
)  # fmt: skip
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_tiers_agree(name, maxsize, ops):
    """The compiled and pure MemoryTier with the same policy keep the same keys."""
    tiers = [impl.MemoryTier(maxsize=maxsize, policy=name) for impl in (COMPILED, PURE)]
    for i, (op, key) in enumerate(ops):
        args = (key, i) if op == "set" else (key,)
        results = [getattr(t, op)(*args) for t in tiers]
        assert results[0] == results[1], (op, key, results)
        assert sorted(tiers[0].keys()) == sorted(tiers[1].keys())
        for t in tiers:
            t._check()
