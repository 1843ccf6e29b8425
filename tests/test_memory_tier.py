"""MemoryTier (L1) behaviour, run against both the compiled and the pure twin."""

from __future__ import annotations

import gc
import math
import weakref

import pytest

from mlcache import NULL, ConfigurationError, Entry
from mlcache.testing import FakeClock


def test_get_set_delete(impl):
    tier = impl.MemoryTier(maxsize=10)
    assert tier.get("a") is None
    assert tier.get("a", 42) == 42
    tier.set("a", 1)
    tier.set(b"a", 2)
    assert tier.get("a") == 1 and tier.get(b"a") == 2
    assert "a" in tier and "b" not in tier
    assert len(tier) == 2
    assert tier.delete("a") is True
    assert tier.delete("a") is False
    assert tier.get("a") is None
    assert tier.stats() == {
        "hits": 2, "misses": 3, "evictions": 0, "expirations": 0, "size": 1, "maxsize": 10,
    }  # fmt: skip
    tier._check()


def test_null_sentinel_is_distinct_from_missing(impl):
    tier = impl.MemoryTier(maxsize=4)
    tier.set("none", NULL)
    marker = object()
    assert tier.get("none", marker) is NULL
    assert tier.get("absent", marker) is marker
    tier.set("value-none", None)
    assert tier.get("value-none", marker) is None


@pytest.mark.parametrize("policy", ["lru", "fifo", "lfu"])
def test_never_above_maxsize(impl, policy):
    tier = impl.MemoryTier(maxsize=7, policy=policy)
    for i in range(1000):
        tier.set(i, i)
        if i % 3:
            tier.get(i // 2)
        assert len(tier) <= 7
    tier._check()
    assert tier.stats()["evictions"] == 1000 - 7


def test_lru_order(impl):
    tier = impl.MemoryTier(maxsize=3, policy="lru")
    for k in "abc":
        tier.set(k, k)
    tier.get("a")  # a is now the most recent; b is the least
    tier.set("d", "d")
    assert sorted(tier.keys()) == ["a", "c", "d"]
    tier.set("c", "C")  # a write is a use too
    tier.set("e", "e")
    assert sorted(tier.keys()) == ["c", "d", "e"]


def test_fifo_ignores_reads(impl):
    tier = impl.MemoryTier(maxsize=3, policy="fifo")
    for k in "abc":
        tier.set(k, k)
    tier.get("a")
    tier.set("d", "d")
    assert sorted(tier.keys()) == ["b", "c", "d"]


def test_lfu_evicts_least_frequent_then_least_recent(impl):
    tier = impl.MemoryTier(maxsize=3, policy="lfu")
    for k in "abc":
        tier.set(k, k)
    tier.get("a")
    tier.get("a")
    tier.get("b")
    tier.set("d", "d")  # c has the lowest count (1)
    assert sorted(tier.keys()) == ["a", "b", "d"]
    tier.get("d")  # b and d both at 2; b was used less recently
    tier.set("e", "e")
    assert sorted(tier.keys()) == ["a", "d", "e"]
    tier._check()


def test_ttl_expiry_with_injected_clock(impl):
    clock = FakeClock()
    tier = impl.MemoryTier(maxsize=10, ttl=10, timer=clock)
    tier.set("a", 1)
    tier.set("b", 2, ttl=3)
    tier.set("c", 3, ttl=60)  # the tier's ttl caps it at 10
    clock.advance(2.9)
    assert tier.get("b") == 2
    clock.advance(0.1)
    assert tier.get("b") is None and "b" not in tier
    assert tier.get("a") == 1
    clock.advance(7)
    assert tier.get("a") is None and tier.get("c") is None
    assert tier.stats()["expirations"] == 3
    tier._check()


def test_entry_keeps_absolute_expiry_and_stale_window(impl):
    clock = FakeClock(1000.0)
    tier = impl.MemoryTier(maxsize=10, timer=clock)
    tier.set_entry("k", Entry("v", expires_at=1010.0, stale_until=1020.0, load_time=0.5))
    assert tier.get_entry("k") == Entry("v", 1010.0, 1020.0, 0.5)
    clock.advance(15)
    assert tier.get("k") is None  # stale is not fresh ...
    assert tier.get_entry("k") == Entry("v", 1010.0, 1020.0, 0.5)  # ... but can be served
    assert tier.delete("k") is True
    tier.set_entry("k", Entry("v", expires_at=1020.0))
    clock.advance(5)
    assert tier.get_entry("k") is None
    tier._check()


def test_tier_ttl_only_shortens_a_backfilled_entry(impl):
    clock = FakeClock(1000.0)
    tier = impl.MemoryTier(maxsize=10, ttl=5, timer=clock)
    tier.set_entry("long", Entry(1, expires_at=2000.0, stale_until=3000.0))
    tier.set_entry("short", Entry(2, expires_at=1002.0))
    assert tier.get_entry("long") == Entry(1, 1005.0, 1005.0, 0.0)
    assert tier.get_entry("short") == Entry(2, 1002.0, 1002.0, 0.0)


def test_setting_a_dead_entry_removes_the_key(impl):
    clock = FakeClock(1000.0)
    tier = impl.MemoryTier(maxsize=10, timer=clock)
    tier.set("k", 1)
    tier.set_entry("k", Entry(2, expires_at=999.0))
    assert tier.get("k") is None and len(tier) == 0


def test_expired_entries_reclaimed_without_reads(impl):
    """A flood of unique short-lived keys: each write first frees what has expired."""
    clock = FakeClock()
    tier = impl.MemoryTier(maxsize=100_000, ttl=1, timer=clock)
    for i in range(20_000):
        tier.set(("k", i), i)
        clock.advance(0.01)  # so about 100 keys are alive at any time
        assert len(tier) <= 101
    assert tier.stats()["evictions"] == 0
    tier._check()
    clock.advance(1)
    alive = len(tier)
    assert alive > 0 and tier.expire() == alive
    assert len(tier) == 0


def test_expired_make_room_before_live_entries_are_evicted(impl):
    clock = FakeClock()
    tier = impl.MemoryTier(maxsize=3, timer=clock)
    tier.set("live1", 1)
    tier.set("short", 2, ttl=1)
    tier.set("live2", 3)
    clock.advance(2)
    tier.set("new", 4)
    assert sorted(tier.keys()) == ["live1", "live2", "new"]
    assert tier.stats()["evictions"] == 0 and tier.stats()["expirations"] == 1


def test_expire_returns_count(impl):
    clock = FakeClock()
    tier = impl.MemoryTier(maxsize=10, timer=clock)
    for i in range(5):
        tier.set(i, i, ttl=i + 1)
    clock.advance(3)
    assert tier.expire() == 3
    assert sorted(tier.keys()) == [3, 4]
    tier._check()


def test_rewriting_without_ttl_clears_expiry(impl):
    clock = FakeClock()
    tier = impl.MemoryTier(maxsize=10, timer=clock)
    tier.set("k", 1, ttl=1)
    tier.set("k", 2)
    clock.advance(10)
    assert tier.get("k") == 2
    tier._check()


def test_clear_keeps_counters_and_works_after(impl):
    tier = impl.MemoryTier(maxsize=4)
    for i in range(10):
        tier.set(i, i)
    tier.clear()
    assert len(tier) == 0 and tier.keys() == []
    tier._check()
    for i in range(10):
        tier.set(i, -i)
    assert sorted(tier.keys()) == [6, 7, 8, 9] and tier.get(9) == -9
    assert tier.stats()["evictions"] == 12
    tier._check()


def test_values_released_when_removed(impl):
    class Value:
        pass

    tier = impl.MemoryTier(maxsize=2)
    v = Value()
    ref = weakref.ref(v)
    tier.set("a", v)
    del v
    gc.collect()
    assert ref() is not None
    tier.set("b", 1)
    tier.set("c", 2)  # evicts a
    gc.collect()
    assert ref() is None


def test_cycle_through_the_tier_is_collected(impl):
    class Holder:
        pass

    tier = impl.MemoryTier(maxsize=2)
    h = Holder()
    h.tier = tier
    tier.set("self", h)
    ref = weakref.ref(h)
    del h, tier
    gc.collect()
    assert ref() is None


def test_keys_with_python_hash_and_eq(impl):
    class Key:
        def __init__(self, n):
            self.n = n

        def __hash__(self):
            return self.n % 3  # many collisions

        def __eq__(self, other):
            return isinstance(other, Key) and other.n == self.n

    tier = impl.MemoryTier(maxsize=50)
    for n in range(40):
        tier.set(Key(n), n)
    for n in range(40):
        assert tier.get(Key(n)) == n
    for n in range(0, 40, 2):
        assert tier.delete(Key(n))
    tier._check()
    assert [tier.get(Key(n)) for n in range(6)] == [None, 1, None, 3, None, 5]


def test_equal_keys_of_different_types_match_like_a_dict(impl):
    tier = impl.MemoryTier(maxsize=10)
    tier.set(1, "one")
    assert tier.get(1.0) == "one" and tier.get(True) == "one"


def test_hash_minus_one_and_none_key(impl):
    tier = impl.MemoryTier(maxsize=10)
    tier.set(-1, "minus one")
    tier.set(-2, "minus two")  # hash(-1) == hash(-2) == -2 in CPython
    tier.set(None, "none")
    assert tier.get(-1) == "minus one" and tier.get(-2) == "minus two"
    assert tier.get(None) == "none"
    tier._check()


def test_unhashable_key_raises_type_error(impl):
    tier = impl.MemoryTier(maxsize=10)
    with pytest.raises(TypeError):
        tier.set([1], 1)
    with pytest.raises(TypeError):
        tier.get({})
    assert len(tier) == 0


def test_failing_eq_propagates_and_keeps_structure(impl):
    class Bad:
        def __hash__(self):
            return 7

        def __eq__(self, other):
            raise RuntimeError("boom")

    tier = impl.MemoryTier(maxsize=10)
    tier.set(7, "seven")  # same hash, so Bad's __eq__ is consulted
    with pytest.raises(RuntimeError, match="boom"):
        tier.set(Bad(), 1)
    assert tier.get(7) == "seven"
    tier._check()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"maxsize": 0}, "maxsize must be an integer >= 1, got 0"),
        ({"maxsize": 2.5}, "maxsize must be an integer >= 1, got 2.5"),
        ({"maxsize": True}, "maxsize must be an integer >= 1, got True"),
        ({"ttl": 0}, "ttl must be a finite number of seconds > 0 or None, got 0"),
        ({"ttl": -1}, "ttl must be"),
        ({"ttl": math.inf}, "ttl must be"),
        ({"ttl": "10"}, "ttl must be"),
        ({"policy": "mru"}, "policy must be one of 'fifo', 'lfu', 'lru'"),
        ({"policy": ["lru"]}, "policy must be one of"),
    ],
)
def test_bad_arguments(impl, kwargs, message):
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        impl.MemoryTier(**{"maxsize": 4, **kwargs})


@pytest.mark.parametrize("ttl", [0, -5, math.nan, "1"])
def test_bad_ttl_on_set_changes_nothing(impl, ttl):
    tier = impl.MemoryTier(maxsize=4)
    tier.set("k", 1)
    with pytest.raises(ConfigurationError):
        tier.set("k", 2, ttl=ttl)
    assert tier.get("k") == 1


def test_repr_and_attributes(impl):
    tier = impl.MemoryTier(maxsize=5, policy="lfu", ttl=30)
    assert repr(tier) == "MemoryTier(maxsize=5, policy='lfu', ttl=30, size=0)"
    assert (tier.maxsize, tier.policy, tier.ttl) == (5, "lfu", 30.0)


def test_grows_in_steps_and_rehashes(impl):
    tier = impl.MemoryTier(maxsize=100_000)
    for i in range(5000):
        tier.set(str(i), i)
    for i in range(0, 5000, 7):
        tier.delete(str(i))
    tier._check()
    assert all(tier.get(str(i)) == (None if i % 7 == 0 else i) for i in range(5000))
