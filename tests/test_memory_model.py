"""Model checks of MemoryTier: compiled twin vs pure twin vs a reference model.

Small key spaces force conflicts; a fake clock drives expiry; after every step both twins run
their structural self-check and must agree with each other and with the model.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import cachetools
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from conftest import COMPILED, IMPLS, PURE
from mlcache import Entry
from mlcache.testing import FakeClock


class CollidingKey:
    """A key whose hash and equality run Python code, and which collides with int keys."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __hash__(self) -> int:
        return self.n % 2

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CollidingKey) and other.n == self.n

    def __repr__(self) -> str:
        return f"K{self.n}"


KEYS = st.sampled_from([0, 1, 2, "a", CollidingKey(0), CollidingKey(3)])


class Model:
    """The textbook definitions: a dict of entries plus the policy's order."""

    def __init__(self, maxsize: int, policy: str, ttl: float | None) -> None:
        self.maxsize, self.policy, self.ttl = maxsize, policy, ttl
        self.data: dict = {}  # key -> [value, expires, dead, load]
        self.order: OrderedDict = OrderedDict()  # lru/fifo: oldest first; lfu: last use order
        self.freq: dict = {}
        self.evictions = self.expirations = 0

    def _use(self, key, write: bool) -> None:
        if self.policy == "lfu":
            self.freq[key] += 1
        if self.policy != "fifo" or write:
            self.order.move_to_end(key)

    def _drop(self, key) -> None:
        del self.data[key], self.order[key]
        self.freq.pop(key, None)

    def _victim(self):
        if self.policy == "lfu":  # lowest count; ties: least recent use (order is use order)
            return min(self.order, key=lambda k: self.freq[k])
        return next(iter(self.order))

    def get(self, key, now):
        if key not in self.data:
            return None
        value, expires, dead, _ = self.data[key]
        if expires <= now:
            if dead <= now:
                self._drop(key)
                self.expirations += 1
            return None
        self._use(key, write=False)
        return value

    def get_entry(self, key, now):
        if key not in self.data:
            return None
        value, expires, dead, load = self.data[key]
        if dead <= now:
            self._drop(key)
            self.expirations += 1
            return None
        if expires > now:
            self._use(key, write=False)
        return Entry(value, expires, dead, load)

    def store(self, key, value, expires, dead, load, now) -> None:
        if dead <= now:
            if key in self.data:
                self._drop(key)
            return
        for k in [k for k, e in self.data.items() if e[2] <= now]:
            self._drop(k)
            self.expirations += 1
        if key in self.data:
            self.data[key] = [value, expires, dead, load]
            self._use(key, write=True)
            return
        if len(self.data) >= self.maxsize:
            self._drop(self._victim())
            self.evictions += 1
        self.data[key] = [value, expires, dead, load]
        self.order[key] = None
        self.freq[key] = 1

    def set(self, key, value, ttl, now) -> None:
        life = ttl if self.ttl is None else self.ttl if ttl is None else min(ttl, self.ttl)
        ends = math.inf if life is None else now + life
        self.store(key, value, ends, ends, 0.0, now)

    def set_entry(self, key, entry, now) -> None:
        expires, dead = entry.expires_at, entry.stale_until
        if self.ttl is not None:
            expires, dead = min(expires, now + self.ttl), min(dead, now + self.ttl)
        self.store(key, entry.value, expires, dead, entry.load_time, now)

    def delete(self, key, now) -> bool:
        if key not in self.data:
            return False
        alive = self.data[key][2] > now
        self._drop(key)
        return alive

    def contains(self, key, now) -> bool:
        return key in self.data and self.data[key][1] > now

    def expire(self, now) -> int:
        dead = [k for k, e in self.data.items() if e[2] <= now]
        for k in dead:
            self._drop(k)
        self.expirations += len(dead)
        return len(dead)


class TierMachine(RuleBasedStateMachine):
    """Every implementation and the model receive the same operations and must agree."""

    @initialize(
        maxsize=st.integers(1, 4),
        policy=st.sampled_from(["lru", "fifo", "lfu"]),
        ttl=st.sampled_from([None, 2.0, 5.0]),
    )
    def setup(self, maxsize, policy, ttl):
        self.clock = FakeClock(1000.0)
        self.tiers = [i.MemoryTier(maxsize, policy, ttl, timer=self.clock) for i in IMPLS]
        self.model = Model(maxsize, policy, ttl)
        self.counter = 0

    def _all(self, method, *args):
        results = [getattr(t, method)(*args) for t in self.tiers]
        assert all(r == results[0] for r in results), (method, args, results)
        return results[0]

    @rule(key=KEYS)
    def get(self, key):
        assert self._all("get", key) == self.model.get(key, self.clock())

    @rule(key=KEYS)
    def get_entry(self, key):
        assert self._all("get_entry", key) == self.model.get_entry(key, self.clock())

    @rule(key=KEYS, ttl=st.sampled_from([None, 1.0, 3.0, 10.0]))
    def set(self, key, ttl):
        self.counter += 1
        self._all("set", key, self.counter, ttl)
        self.model.set(key, self.counter, ttl, self.clock())

    @rule(
        key=KEYS,
        expires=st.sampled_from([-1.0, 0.0, 1.0, 4.0, math.inf]),
        stale=st.sampled_from([0.0, 2.0, math.inf]),
    )
    def set_entry(self, key, expires, stale):
        self.counter += 1
        now = self.clock()
        entry = Entry(self.counter, now + expires, now + expires + stale, 0.25)
        self._all("set_entry", key, entry)
        self.model.set_entry(key, entry, now)

    @rule(key=KEYS)
    def delete(self, key):
        assert self._all("delete", key) == self.model.delete(key, self.clock())

    @rule(key=KEYS)
    def contains(self, key):
        assert self._all("__contains__", key) == self.model.contains(key, self.clock())

    @rule()
    def expire(self):
        assert self._all("expire") == self.model.expire(self.clock())

    @precondition(lambda self: self.counter % 5 == 4)
    @rule()
    def clear(self):
        self._all("clear")
        self.model = Model(self.model.maxsize, self.model.policy, self.model.ttl)
        self.model.evictions = self.tiers[0].evictions
        self.model.expirations = self.tiers[0].expirations

    @rule(seconds=st.sampled_from([0.5, 1.0, 2.5]))
    def tick(self, seconds):
        self.clock.advance(seconds)

    @invariant()
    def agree_and_whole(self):
        if not hasattr(self, "tiers"):
            return
        for tier in self.tiers:
            tier._check()
            assert len(tier) == len(self.model.data)
            assert sorted(map(repr, tier.keys())) == sorted(map(repr, self.model.data))
            assert tier.evictions == self.model.evictions
            assert tier.expirations == self.model.expirations


TierMachine.TestCase.settings = settings(
    max_examples=400, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
TestTierModel = TierMachine.TestCase


OPS = st.lists(
    st.tuples(st.sampled_from(["get", "set", "delete"]), st.integers(0, 6), st.integers()),
    max_size=200,
)


@pytest.mark.parametrize("policy", ["lru", "fifo"])
@given(maxsize=st.integers(1, 5), ops=OPS)
@settings(max_examples=300, deadline=None)
def test_eviction_order_matches_cachetools(policy, maxsize, ops):
    """LRU and FIFO evict exactly as cachetools.LRUCache / FIFOCache on any sequence."""
    reference = {"lru": cachetools.LRUCache, "fifo": cachetools.FIFOCache}[policy](maxsize)
    tiers = [i.MemoryTier(maxsize, policy) for i in IMPLS]
    for op, key, value in ops:
        if op == "get":
            expected = reference.get(key)
            assert all(t.get(key) == expected for t in tiers)
        elif op == "set":
            reference[key] = value
            for t in tiers:
                t.set(key, value)
        else:
            expected = reference.pop(key, None) is not None
            assert all(t.delete(key) == expected for t in tiers)
        for t in tiers:
            assert sorted(t.keys()) == sorted(reference.keys())
    for t in tiers:
        t._check()


@pytest.mark.skipif(COMPILED is None, reason="the compiled extension is not built")
@given(
    policy=st.sampled_from(["lru", "fifo", "lfu"]),
    maxsize=st.integers(1, 64),
    ops=st.lists(st.tuples(st.booleans(), st.integers(0, 100)), max_size=2000),
)
@settings(max_examples=100, deadline=None)
def test_twins_agree_on_long_sequences(policy, maxsize, ops):
    """The compiled and pure twins keep the same entries over long, larger sequences."""
    compiled, pure = COMPILED.MemoryTier(maxsize, policy), PURE.MemoryTier(maxsize, policy)
    for is_get, key in ops:
        if is_get:
            assert compiled.get(key) == pure.get(key)
        else:
            compiled.set(key, key)
            pure.set(key, key)
    assert sorted(compiled.keys()) == sorted(pure.keys())
    assert compiled.stats() == pure.stats()
    compiled._check()
