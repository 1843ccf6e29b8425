"""LFU: evict the least frequently used entry; ties go to the least recently used.

Frequencies count reads and writes while the entry is cached and are forgotten when it leaves
(in-cache LFU, no aging). The compiled twin is the O(1) bucket list of Shah, Mitra & Matani,
"An O(1) algorithm for implementing the LFU cache eviction scheme" (2010).
"""

from __future__ import annotations

from collections import OrderedDict

from .base import Policy

__all__ = ["LFUPolicy"]


class LFUPolicy(Policy):
    """Least frequently used; within one frequency, least recently used first."""

    name = "lfu"

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self._freq: dict[int, int] = {}
        # frequency -> slots at that frequency, least recently used first
        self._buckets: dict[int, OrderedDict[int, None]] = {}
        self._min = 0

    def _leave(self, slot: int, freq: int) -> None:
        bucket = self._buckets[freq]
        del bucket[slot]
        if not bucket:
            del self._buckets[freq]

    def _enter(self, slot: int, freq: int) -> None:
        self._freq[slot] = freq
        self._buckets.setdefault(freq, OrderedDict())[slot] = None

    def on_insert(self, slot: int, h: int) -> None:
        self._enter(slot, 1)
        self._min = 1

    def on_hit(self, slot: int) -> None:
        freq = self._freq[slot]
        self._leave(slot, freq)
        self._enter(slot, freq + 1)
        if self._min == freq and freq not in self._buckets:
            self._min = freq + 1

    def on_remove(self, slot: int) -> None:
        freq = self._freq.pop(slot)
        self._leave(slot, freq)
        if freq == self._min and freq not in self._buckets:
            self._min = min(self._buckets, default=0)

    def evict(self) -> int:
        if not self._freq:
            return -1
        slot = next(iter(self._buckets[self._min]))
        self.on_remove(slot)
        return slot

    def reset(self) -> None:
        self._freq.clear()
        self._buckets.clear()
        self._min = 0

    def check(self, live: set[int]) -> None:
        assert set(self._freq) == live, (sorted(self._freq), sorted(live))
        in_buckets = [s for b in self._buckets.values() for s in b]
        assert sorted(in_buckets) == sorted(live)
        assert all(self._freq[s] == f for f, b in self._buckets.items() for s in b)
        assert all(self._buckets.values()), "empty bucket kept"
        assert self._min == min(self._buckets, default=0)
