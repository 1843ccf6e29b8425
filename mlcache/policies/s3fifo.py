"""S3-FIFO: Yang, Zhang, Qiu, Yue & Rashmi, "FIFO queues are all you need for cache
eviction", SOSP 2023; as libCacheSim's ``S3FIFO`` (its current S3FIFO.c), which it matches
exactly for caches of 20 objects or more.

Three FIFO queues: a small queue S (10% of ``maxsize``, at least 1 entry), a main queue M (the
rest) and a ghost queue G remembering the hashes of up to 90% of ``maxsize`` entries evicted
from S. A new key goes to M if its hash is in G (and leaves G), else to S; until the first
eviction, it also goes to M once S is full. A hit adds 1 to the entry's count (capped at 3).
To evict: from M if M is over its share or S is empty, else from S.
- From S, the oldest entry moves to M (count reset to 0) if it was hit at least twice
  (libCacheSim's ``move_to_main_threshold=2``), else it is evicted and its hash enters G.
- From M, the oldest entry with count > 0 is re-queued with count - 1 (a 2-bit CLOCK); the
  first one with count 0 is evicted.
An entry that is deleted or expires leaves without a ghost. libCacheSim looks a new key up in
G before evicting; here G is cut back to its size only at the next insertion, after that
look-up, which gives the same result. libCacheSim refuses to insert into S when S would have
1 entry (caches under 20 objects then hold nothing): a tier cannot refuse, so S keeps 1 entry.
"""

from __future__ import annotations

from collections import OrderedDict

from .base import Policy

__all__ = ["S3FIFOPolicy"]


class S3FIFOPolicy(Policy):
    """S3-FIFO (see the module docstring)."""

    name = "s3fifo"

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.small_max = max(1, int(maxsize * 0.1))
        self.main_max = maxsize - self.small_max
        self.ghost_max = int(maxsize * 0.9)
        self.reset()

    def reset(self) -> None:
        self._small: OrderedDict[int, None] = OrderedDict()  # oldest first
        self._main: OrderedDict[int, None] = OrderedDict()
        self._ghost: OrderedDict[int, None] = OrderedDict()  # hashes, oldest first
        self._freq: dict[int, int] = {}
        self._hash: dict[int, int] = {}
        self._evicted = False

    def on_insert(self, slot: int, h: int) -> None:
        ghost_hit = self._ghost.pop(h, 0) is None
        while len(self._ghost) > self.ghost_max:
            self._ghost.popitem(last=False)
        self._hash[slot] = h
        self._freq[slot] = 0
        if ghost_hit or (not self._evicted and len(self._small) >= self.small_max):
            self._main[slot] = None
        else:
            self._small[slot] = None

    def on_hit(self, slot: int) -> None:
        if self._freq[slot] < 3:
            self._freq[slot] += 1

    def on_remove(self, slot: int) -> None:
        if self._small.pop(slot, 0) is not None:
            del self._main[slot]
        del self._freq[slot], self._hash[slot]

    def _evict_small(self) -> int:
        while self._small:
            s = self._small.popitem(last=False)[0]
            if self._freq[s] >= 2:
                self._freq[s] = 0
                self._main[s] = None
            else:
                if self.ghost_max and self._hash[s] not in self._ghost:
                    self._ghost[self._hash[s]] = None
                return s
        return -1

    def _evict_main(self) -> int:
        while self._main:
            s = self._main.popitem(last=False)[0]
            if self._freq[s] >= 1:
                self._freq[s] -= 1
                self._main[s] = None
            else:
                return s
        return -1

    def evict(self) -> int:
        self._evicted = True
        s = -1
        while s < 0 and (self._small or self._main):
            if len(self._main) > self.main_max or not self._small:
                s = self._evict_main()
            else:
                s = self._evict_small()
        if s >= 0:
            del self._freq[s], self._hash[s]
        return s

    def state(self) -> tuple[list[int], list[int], dict[int, int], list[int]]:
        """(small, main, count per slot, ghost hashes): for differential tests."""
        return list(self._small), list(self._main), dict(self._freq), list(self._ghost)

    def check(self, live: set[int]) -> None:
        slots = [*self._small, *self._main]
        assert len(slots) == len(set(slots)) == len(live) and set(slots) == live, (slots, live)
        assert set(self._freq) == set(self._hash) == live
        assert len(self._ghost) <= self.ghost_max
