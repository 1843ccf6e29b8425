"""W-TinyLFU: Einziger, Friedman & Manes, "TinyLFU: A Highly Efficient Cache Admission
Policy", ACM Transactions on Storage 2017; laid out as Caffeine's simulator
(``WindowTinyLfuPolicy``) does.

Parameters: a window LRU of 1% of ``maxsize`` (at least 1 entry); the rest is a segmented LRU
with a protected segment of 80% of it and a probation segment; a count-min sketch of 4 rows of
4-bit counters, ``maxsize`` counters a row (rounded up to a power of two, at least 16, at most
2**24), aged by halving every counter after ``10 * maxsize`` additions (TinyLFU's reset).
Every read, write and insertion adds the key's hash to the sketch. New entries enter the
window; a probation hit promotes to protected, whose oldest entry is then demoted to probation
if protected is over its share. When the cache is full and a new key needs room, the window's
oldest entry (the candidate) and the probation's oldest (the victim) are compared by sketch
estimate: the candidate moves to probation and the victim is evicted if the candidate is
strictly more frequent, else the candidate is evicted (Caffeine's simulator; no random jitter).
Evict-before-insert (the tier's protocol) makes this the same choice Caffeine makes after
inserting. Removals may leave the window short: then the victim is the oldest of probation,
protected, window, in that order. libCacheSim's ``WTinyLFU`` differs in sketch and aging, so
its hit ratios are close to these, not equal.
"""

from __future__ import annotations

from collections import OrderedDict

from .base import Policy

__all__ = ["CountMinSketch", "WTinyLFUPolicy"]

_M64 = (1 << 64) - 1
# Row multipliers (Caffeine's FrequencySketch seeds).
_SEEDS = (0xC3A5C85C97CB3127, 0xB492B66FBE98F273, 0x9AE16A3B2F90404F, 0xCBF29CE484222325)
_HALVE = bytes(c >> 1 for c in range(256))


class CountMinSketch:
    """Count-min sketch of 4 rows of 4-bit counters with periodic halving (TinyLFU's aging).

    Twin of the compiled ``_Sketch`` (same hashing and numbers). ``width`` is rounded up to a
    power of two, at least 16; after ``sample`` additions that raised a counter, every counter
    is halved and the addition count too.
    """

    def __init__(self, width: int, sample: int) -> None:
        bits = max(4, (width - 1).bit_length())
        self.width = 1 << bits
        self._shift = 64 - bits
        self.sample = sample
        self.reset()

    def reset(self) -> None:
        self._table = bytearray(4 * self.width)
        self.additions = 0

    def _indexes(self, h: int) -> list[int]:
        x = h & _M64
        x = ((x ^ (x >> 33)) * 0xFF51AFD7ED558CCD) & _M64
        x ^= x >> 33
        return [row * self.width + (((x * seed) & _M64) >> self._shift)
                for row, seed in enumerate(_SEEDS)]  # fmt: skip

    def add(self, h: int) -> None:
        table, added = self._table, False
        for i in self._indexes(h):
            if table[i] < 15:
                table[i] += 1
                added = True
        if added:
            self.additions += 1
            if self.additions >= self.sample:
                self._table = table.translate(_HALVE)
                self.additions //= 2

    def frequency(self, h: int) -> int:
        """The estimate of how often ``h`` was added (since the last agings)."""
        table = self._table
        return min(table[i] for i in self._indexes(h))

    def counters(self) -> bytes:
        return bytes(self._table)


class WTinyLFUPolicy(Policy):
    """W-TinyLFU (see the module docstring)."""

    name = "wtinylfu"

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.window_max = max(1, int(maxsize * 0.01))
        self.protected_max = int((maxsize - self.window_max) * 0.8)
        self.sketch = CountMinSketch(min(maxsize, 1 << 24), 10 * maxsize)
        self.reset()

    def reset(self) -> None:
        # window, probation, protected: slots oldest first
        self._queues: tuple[OrderedDict[int, None], ...] = tuple(OrderedDict() for _ in range(3))
        self._queue: dict[int, int] = {}
        self._hash: dict[int, int] = {}
        self.sketch.reset()

    def _move(self, slot: int, q: int) -> None:
        del self._queues[self._queue[slot]][slot]
        self._queues[q][slot] = None
        self._queue[slot] = q

    def on_insert(self, slot: int, h: int) -> None:
        self._hash[slot] = h
        self.sketch.add(h)
        window = self._queues[0]
        window[slot] = None
        self._queue[slot] = 0
        if len(window) > self.window_max:  # not full yet: no victim needed
            self._move(next(iter(window)), 1)

    def on_hit(self, slot: int) -> None:
        self.sketch.add(self._hash[slot])
        q = self._queue[slot]
        if q == 1:
            self._move(slot, 2)
            if len(self._queues[2]) > self.protected_max:
                self._move(next(iter(self._queues[2])), 1)
        else:
            self._queues[q].move_to_end(slot)

    def on_remove(self, slot: int) -> None:
        del self._queues[self._queue.pop(slot)][slot]
        del self._hash[slot]

    def evict(self) -> int:
        window, probation, protected = self._queues
        if len(window) >= self.window_max:
            candidate = next(iter(window))
            victim = next(iter(probation), -1)
            freq = self.sketch.frequency
            if victim >= 0 and freq(self._hash[candidate]) > freq(self._hash[victim]):
                self._move(candidate, 1)
                self.on_remove(victim)
                return victim
            self.on_remove(candidate)
            return candidate
        for queue in (probation, protected, window):  # the window is short after removals
            if queue:
                victim = next(iter(queue))
                self.on_remove(victim)
                return victim
        return -1

    def state(self) -> tuple[list[int], list[int], list[int], bytes]:
        """(window, probation, protected, sketch counters): for differential tests."""
        return (*(list(q) for q in self._queues), self.sketch.counters())

    def check(self, live: set[int]) -> None:
        slots = [s for q in self._queues for s in q]
        assert len(slots) == len(set(slots)) == len(live) and set(slots) == live, (slots, live)
        assert all(self._queue[s] == q for q, queue in enumerate(self._queues) for s in queue)
        assert set(self._hash) == live
        assert len(self._queues[0]) <= self.window_max
        assert len(self._queues[2]) <= self.protected_max
