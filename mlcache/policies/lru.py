"""LRU and FIFO: one recency list, differing only in what moves an entry to its tail."""

from __future__ import annotations

from collections import OrderedDict

from .base import Policy

__all__ = ["FIFOPolicy", "LRUPolicy"]


class _OrderPolicy(Policy):
    """Slots in an order; the victim is the head (the oldest position)."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self._order: OrderedDict[int, int] = OrderedDict()
        # Hot paths bound straight to the C methods (a Python frame costs more than the work):
        # on_insert(slot, h) stores ``h`` as the (unused) value.
        self.on_insert = self._order.__setitem__  # type: ignore[method-assign]

    def on_insert(self, slot: int, h: int) -> None:
        self._order[slot] = h

    def on_update(self, slot: int) -> None:
        # A write moves the entry to the tail in both LRU and FIFO (as cachetools does).
        self._order.move_to_end(slot)

    def on_remove(self, slot: int) -> None:
        del self._order[slot]

    def evict(self) -> int:
        if not self._order:
            return -1
        return self._order.popitem(last=False)[0]

    def reset(self) -> None:
        self._order.clear()

    def check(self, live: set[int]) -> None:
        assert set(self._order) == live, (sorted(self._order), sorted(live))
        assert len(self._order) == len(live)


class LRUPolicy(_OrderPolicy):
    """Least recently used: every read or write moves the entry to the tail."""

    name = "lru"

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.on_hit = self._order.move_to_end  # type: ignore[method-assign]

    def on_hit(self, slot: int) -> None:
        self._order.move_to_end(slot)


class FIFOPolicy(_OrderPolicy):
    """First in, first out: reads do not reorder; a write re-queues the entry at the tail."""

    name = "fifo"

    def on_hit(self, slot: int) -> None:
        pass
