"""SIEVE: Zhang, Yang, Yue, Vigfusson & Rashmi, "SIEVE is Simpler than LRU: an Efficient
Turn-Key Eviction Algorithm for Web Caches", NSDI 2024.

One FIFO queue and a visited bit per entry. New entries enter at the newest end with the bit
clear; a hit (or a write) only sets the bit, so hits never reorder the queue. To evict, a hand
sweeps from where it last stopped (first: the oldest entry) towards the newest, clearing set
bits, wrapping to the oldest; it evicts the first entry whose bit is clear and stays at that
entry's newer neighbour. No parameters. Matches libCacheSim's ``Sieve`` exactly; an entry
removed under the hand moves the hand to its newer neighbour, as libCacheSim does.
"""

from __future__ import annotations

from .base import Policy

__all__ = ["SievePolicy"]


class SievePolicy(Policy):
    """SIEVE (see the module docstring)."""

    name = "sieve"

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.reset()

    def reset(self) -> None:
        self._prev: dict[int, int] = {}  # towards the oldest entry (-1: none)
        self._next: dict[int, int] = {}  # towards the newest entry (-1: none)
        self._visited: dict[int, bool] = {}
        self._head = self._tail = -1  # oldest, newest
        self._hand = -1  # -1: start from the oldest

    def _unlink(self, slot: int) -> None:
        p, n = self._prev.pop(slot), self._next.pop(slot)
        del self._visited[slot]
        if p >= 0:
            self._next[p] = n
        else:
            self._head = n
        if n >= 0:
            self._prev[n] = p
        else:
            self._tail = p

    def on_insert(self, slot: int, h: int) -> None:
        self._prev[slot], self._next[slot] = self._tail, -1
        if self._tail >= 0:
            self._next[self._tail] = slot
        else:
            self._head = slot
        self._tail = slot
        self._visited[slot] = False

    def on_hit(self, slot: int) -> None:
        self._visited[slot] = True

    def on_update(self, slot: int) -> None:
        self._visited[slot] = True

    def on_remove(self, slot: int) -> None:
        if slot == self._hand:
            self._hand = self._next[slot]
        self._unlink(slot)

    def evict(self) -> int:
        s = self._hand if self._hand >= 0 else self._head
        if s < 0:
            return -1
        while self._visited[s]:
            self._visited[s] = False
            s = self._next[s]
            if s < 0:
                s = self._head
        self._hand = self._next[s]
        self._unlink(s)
        return s

    def state(self) -> tuple[list[int], list[int], int]:
        """(slots oldest first, their visited bits, the hand): for differential tests."""
        slots, s = [], self._head
        while s >= 0:
            slots.append(s)
            s = self._next[s]
        return slots, [int(self._visited[s]) for s in slots], self._hand

    def check(self, live: set[int]) -> None:
        slots = self.state()[0]
        assert len(slots) == len(set(slots)) == len(live) and set(slots) == live, (slots, live)
        assert all(self._prev[b] == a for a, b in zip([-1, *slots], slots)), "broken links"
        assert self._tail == (slots[-1] if slots else -1)
        assert set(self._visited) == live
        assert self._hand == -1 or self._hand in live
