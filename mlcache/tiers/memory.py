"""L1: the in-process tier, bounded by entry count, with per-entry expiry (pure-Python twin).

This module is the reference implementation; ``mlcache._speedups.MemoryTier`` is its compiled
twin with the same behaviour, and ``mlcache.MemoryTier`` is whichever of the two is active.

Storage and policy are apart: the tier keeps keys, values and lifetimes in numbered *slots*, and
its eviction policy (``mlcache.policies``) sees only slot numbers. Expiry is reclaimed eagerly:
every write first drops the entries whose lifetime has ended (a min-heap ordered by end of life),
so a flood of short-lived keys never waits for a read to be freed, and expired entries make
room before any live entry is evicted.

Guarantees:

- never more than ``maxsize`` entries; an expired entry is never returned by ``get``;
- thread-safe: every operation is atomic with respect to the others, including for keys whose
  ``__hash__``/``__eq__`` run Python code;
- ``len()`` counts stored entries, including expired ones not yet reclaimed (``expire()``
  reclaims them now).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from .._checks import check_positive_int, check_ttl
from ..entry import NEVER, Entry
from ..policies import POLICIES, Policy, make_policy

__all__ = ["MemoryTier"]

# A node is one version of one entry, never changed once published, so that readers without
# the lock see a whole entry: [value, expires, dead, load, slot, key].
_VALUE, _EXPIRES, _DEAD, _LOAD, _SLOT, _KEY = range(6)
_DRAIN_AT = 64  # reads logged before a reader drains the log itself


class MemoryTier:
    """A bounded in-process cache with a pluggable eviction policy and per-entry expiry.

    ``maxsize`` bounds the number of entries; ``policy`` names the eviction policy (``"lru"``,
    ``"lfu"``, ``"fifo"``, ...); ``ttl`` (seconds) is the default lifetime and also a cap: an
    entry never lives longer than ``ttl`` in this tier. ``timer`` returns the current wall-clock
    time in seconds (default ``time.time``); inject a fake clock to test expiry without sleeping.
    """

    # Reads take no lock (a Python lock costs more than the whole lookup). A read appends what it
    # found to a log (deque.append is atomic): the node on a hit, None on a miss. Writers hold
    # the lock and first replay the log into the policy, in order, so the policy sees every use
    # before it next chooses a victim, exactly as if it had been told at once (Caffeine's read
    # buffer, made lossless).

    def __init__(
        self,
        maxsize: int = 1024,
        policy: str = "lru",
        ttl: float | None = None,
        *,
        timer: Callable[[], float] | None = None,
    ) -> None:
        self.maxsize: int = check_positive_int("maxsize", maxsize)
        self.ttl: float | None = check_ttl("ttl", ttl)
        self._policy: Policy = make_policy(policy, POLICIES, self.maxsize)
        self.policy: str = policy
        self._timer: Callable[[], float] = time.time if timer is None else timer
        self._lock = threading.RLock()
        self._log: deque[list[Any] | None] = deque()
        self._hits = self._misses = self.evictions = self.expirations = 0
        self._seq = itertools.count()  # tie-breaker for heap items
        self._reset()

    def _reset(self) -> None:
        self._index: dict[Hashable, list[Any]] = {}  # key -> its current node
        self._nodes: list[list[Any] | None] = []  # slot -> current node (None: free)
        self._free: list[int] = []
        self._heap: list[tuple[float, int, list[Any]]] = []  # (dead, seq, node), lazily deleted
        self._policy.reset()

    @property
    def hits(self) -> int:
        with self._lock:
            self._drain()
            return self._hits

    @property
    def misses(self) -> int:
        with self._lock:
            self._drain()
            return self._misses

    # -- reads (no lock) -----------------------------------------------------------------------

    def get(self, key: Hashable, default: Any = None) -> Any:
        """Return the fresh value stored under ``key``, else ``default``."""
        node = self._index.get(key)
        log = self._log
        if node is not None:
            if node[_EXPIRES] == NEVER:
                log.append(node)
                if len(log) >= _DRAIN_AT:
                    self._drain_nowait()
                return node[_VALUE]
            now = self._timer()
            if node[_EXPIRES] > now:
                log.append(node)
                if len(log) >= _DRAIN_AT:
                    self._drain_nowait()
                return node[_VALUE]
            if node[_DEAD] <= now:
                self._drop_dead(key, node)
        log.append(None)
        return default

    def get_call(self, ns: str, arg: Any, default: Any, horizon: float) -> Any:
        """For a decorated function's hit path: the value under the L1 key ``(ns, arg)`` if it
        can be served as it is, else ``default`` (absent, stale, or within ``horizon`` load
        times of its expiry, where the full path decides on an early refresh). A hit counts as
        a hit and a use; anything else counts nothing (the full path will)."""
        node = self._index.get((ns, arg))
        if node is None:
            return default
        expires = node[_EXPIRES]
        if expires != NEVER:
            now = self._timer()
            if expires <= now or expires - now <= node[_LOAD] * horizon:
                return default
        log = self._log
        log.append(node)
        if len(log) >= _DRAIN_AT:
            self._drain_nowait()
        return node[_VALUE]

    def get_entry(self, key: Hashable) -> Entry | None:
        """Return the entry under ``key`` while it may still be served (fresh or stale), else None.

        A fresh entry counts as a hit and a use; a stale one as a miss, without a use.
        """
        node = self._index.get(key)
        if node is None:
            self._log.append(None)
            return None
        if node[_EXPIRES] != NEVER:  # (dead >= expires: a finite dead implies this)
            now = self._timer()
            if node[_DEAD] <= now:
                self._drop_dead(key, node)
                self._log.append(None)
                return None
            self._log.append(node if node[_EXPIRES] > now else None)
        else:
            self._log.append(node)
        return Entry(node[_VALUE], node[_EXPIRES], node[_DEAD], node[_LOAD])

    def __contains__(self, key: Hashable) -> bool:
        """True if ``key`` has a fresh value (does not count as a use)."""
        node = self._index.get(key)
        return node is not None and (node[_EXPIRES] == NEVER or node[_EXPIRES] > self._timer())

    def __len__(self) -> int:
        return len(self._index)

    def keys(self) -> list[Hashable]:
        """A snapshot of the stored keys (including expired ones not yet reclaimed)."""
        with self._lock:
            return list(self._index)

    # -- writes (under the lock, after replaying the read log) ---------------------------------

    def set(self, key: Hashable, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (default and cap: the tier's ``ttl``)."""
        if ttl is None:
            life = self.ttl
        else:
            life = check_ttl("ttl", ttl)
            if self.ttl is not None and self.ttl < life:
                life = self.ttl
        with self._lock:
            if life is None:
                self._store(key, value, NEVER, NEVER, 0.0, self._timer() if self._heap else 0.0)
            else:
                now = self._timer()
                self._store(key, value, now + life, now + life, 0.0, now)

    def set_entry(self, key: Hashable, entry: Entry) -> None:
        """Store ``entry`` under ``key`` with its absolute lifetime (capped by the tier's ``ttl``).

        An entry whose life has already ended removes the key instead.
        """
        expires, dead = entry.expires_at, entry.stale_until
        with self._lock:
            now = self._timer()
            if self.ttl is not None:
                expires = min(expires, now + self.ttl)
                dead = min(dead, now + self.ttl)
            self._store(key, entry.value, expires, dead, entry.load_time, now)

    def _store(
        self, key: Hashable, value: Any, expires: float, dead: float, load: float, now: float
    ) -> None:
        if self._log:
            self._drain()
        index = self._index
        node = index.get(key)  # (an unhashable key fails here, before anything changes)
        if dead <= now:
            if node is not None:
                self._remove(node[_SLOT])
            return
        if self._heap and self._heap[0][0] <= now:
            self._reclaim(now)
            node = index.get(key)
        policy, nodes = self._policy, self._nodes
        if node is not None:
            slot, key = node[_SLOT], node[_KEY]  # the dict keeps its first key object: so do we
            policy.on_update(slot)
        else:
            if len(index) >= self.maxsize:
                slot = policy.evict()  # the victim's slot is reused at once
                del index[nodes[slot][_KEY]]  # type: ignore[index]
                self.evictions += 1
            else:
                slot = self._free.pop() if self._free else self._new_slot()
            policy.on_insert(slot, hash(key))
        node = [value, expires, dead, load, slot, key]
        nodes[slot] = index[key] = node
        if dead != NEVER:
            heapq.heappush(self._heap, (dead, next(self._seq), node))
            if len(self._heap) > 2 * len(index) + 64:
                self._compact_heap()

    def _new_slot(self) -> int:
        slot = len(self._nodes)
        self._policy.grow(slot + 1)
        self._nodes.append(None)
        return slot

    def delete(self, key: Hashable) -> bool:
        """Remove ``key``; return True if it held a value that could still be served."""
        with self._lock:
            self._drain()
            node = self._index.get(key)
            if node is None:
                return False
            alive = node[_DEAD] == NEVER or node[_DEAD] > self._timer()
            self._remove(node[_SLOT])
            return alive

    def clear(self) -> None:
        """Remove every entry (counters are kept)."""
        with self._lock:
            self._drain()
            self._reset()

    def expire(self) -> int:
        """Reclaim every entry whose life has ended now; return how many."""
        with self._lock:
            self._drain()
            return self._reclaim(self._timer())

    # -- internals -----------------------------------------------------------------------------

    def _drain(self) -> None:
        """Replay the read log into the policy and the counters (caller holds the lock)."""
        log, nodes, on_hit = self._log, self._nodes, self._policy.on_hit
        pop, count, misses = log.popleft, len(log), 0
        for _ in range(count):  # readers may append meanwhile; they are replayed next time
            node = pop()
            if node is None:
                misses += 1
                continue
            # Single-threaded, every write drains first, so the slot still holds the entry read.
            # A reader logs without the lock, though: meanwhile its entry may have left, its slot
            # may hold another key, or clear() may have replaced the slot list with a shorter
            # one. Count the use only if the slot still holds the key that was read.
            slot = node[_SLOT]
            current = nodes[slot] if slot < len(nodes) else None
            if current is not None and current[_KEY] is node[_KEY]:
                on_hit(slot)
        self._hits += count - misses
        self._misses += misses

    def _drain_nowait(self) -> None:
        if self._lock.acquire(blocking=False):  # else a writer is about to drain it anyway
            try:
                self._drain()
            finally:
                self._lock.release()

    def _drop_dead(self, key: Hashable, node: list[Any]) -> None:
        """A reader found ``node`` past its end of life: remove it unless replaced meanwhile."""
        with self._lock:
            self._drain()
            if self._index.get(key) is node:
                self._remove(node[_SLOT])
                self.expirations += 1

    def _remove(self, slot: int) -> None:
        """Drop the entry in ``slot`` from the policy and the index."""
        self._policy.on_remove(slot)
        del self._index[self._nodes[slot][_KEY]]  # type: ignore[index]
        self._nodes[slot] = None
        self._free.append(slot)

    def _reclaim(self, now: float) -> int:
        heap, nodes, count = self._heap, self._nodes, 0
        while heap and heap[0][0] <= now:
            node = heapq.heappop(heap)[2]
            if nodes[node[_SLOT]] is node:
                self._remove(node[_SLOT])
                count += 1
        self.expirations += count
        return count

    def _compact_heap(self) -> None:
        nodes = self._nodes
        self._heap = [item for item in self._heap if nodes[item[2][_SLOT]] is item[2]]
        heapq.heapify(self._heap)

    def stats(self) -> dict[str, int]:
        """Counters since creation: hits, misses, evictions, expirations; and size, maxsize."""
        with self._lock:
            self._drain()
            return {
                "hits": self._hits,
                "misses": self._misses,
                "evictions": self.evictions,
                "expirations": self.expirations,
                "size": len(self._index),
                "maxsize": self.maxsize,
            }

    def _check(self) -> None:
        """Raise ``AssertionError`` if an internal invariant is broken (for tests)."""
        with self._lock:
            self._drain()
            live = {node[_SLOT] for node in self._index.values()}
            assert len(live) == len(self._index) <= self.maxsize
            assert not live & set(self._free) and len(set(self._free)) == len(self._free)
            assert len(live) + len(self._free) == len(self._nodes)
            for key, node in self._index.items():
                assert self._nodes[node[_SLOT]] is node and node[_KEY] is key
                assert node[_EXPIRES] <= node[_DEAD]
            for slot in self._free:
                assert self._nodes[slot] is None
            valid = [node for _, _, node in self._heap if self._nodes[node[_SLOT]] is node]
            assert sorted(n[_SLOT] for n in valid) == sorted(
                n[_SLOT] for n in self._index.values() if n[_DEAD] != NEVER
            )
            self._policy.check(live)

    def __repr__(self) -> str:
        ttl = "" if self.ttl is None else f", ttl={self.ttl:g}"
        return (
            f"{type(self).__name__}(maxsize={self.maxsize}, policy={self.policy!r}{ttl}, "
            f"size={len(self._index)})"
        )
