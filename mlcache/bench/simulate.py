"""Replay a trace of integer keys through an eviction policy and count hits.

Conventions (libCacheSim's): the cache holds ``size`` objects and starts empty; every first
access is a miss; a miss inserts the key, evicting the policy's victim when full (except
``belady-bypass``); no warm-up is excluded. The compiled simulator (``mlcache._speedups``)
runs the same compiled policy classes as the L1 tier; the pure twin here runs the pure
policies and gives the same numbers, only slower.

Policies are the names in ``mlcache.policies.POLICIES`` plus the two upper bounds:
``belady`` (Belady's MIN with demand paging: the missed key is always inserted, evicting the
entry requested farthest in the future; libCacheSim's ``Belady``) and ``belady-bypass`` (MIN
that may drop the missed key itself when it is requested no sooner than every cached entry;
Caffeine's ``opt``; never fewer hits than ``belady``).
"""

from __future__ import annotations

import heapq
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from .._checks import check_choice, check_positive_int
from .._impl import COMPILED, POLICIES
from .._impl import _speedups as _compiled
from ..policies import POLICIES as PURE_POLICIES
from ..policies import Policy

__all__ = [
    "BELADY",
    "NEVER",
    "POLICY_NAMES",
    "SimResult",
    "count_unique",
    "next_accesses",
    "replay",
    "simulate",
]

#: The upper bounds: name -> whether the missed key may be dropped (bypass).
BELADY = {"belady": False, "belady-bypass": True}
#: Every policy the simulator knows, in the order tables show them.
POLICY_NAMES: tuple[str, ...] = (*PURE_POLICIES, *BELADY)
#: ``next_accesses`` of a request whose key is not requested again.
NEVER = (1 << 63) - 1


@dataclass(frozen=True)
class SimResult:
    """The outcome of one replay."""

    policy: str
    size: int
    requests: int
    hits: int
    seconds: float

    @property
    def misses(self) -> int:
        return self.requests - self.hits

    @property
    def hit_ratio(self) -> float:
        return self.hits / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "policy": self.policy,
            "size": self.size,
            "requests": self.requests,
            "hits": self.hits,
            "misses": self.misses,
            "hit_ratio": self.hit_ratio,
            "seconds": self.seconds,
        }


def _use_compiled(compiled: bool | None) -> bool:
    if compiled and not COMPILED:
        raise RuntimeError("the compiled extension is not available")
    return COMPILED if compiled is None else compiled


def next_accesses(keys: array, *, compiled: bool | None = None) -> array:
    """``out[i]`` is the index of the next request for ``keys[i]``, or ``NEVER``."""
    if _use_compiled(compiled):
        return _compiled.next_accesses(keys)
    out, last = array("q", [NEVER]) * len(keys), {}
    for i in range(len(keys) - 1, -1, -1):
        out[i] = last.get(keys[i], NEVER)
        last[keys[i]] = i
    return out


def count_unique(keys: array, *, compiled: bool | None = None) -> int:
    """The number of distinct keys."""
    return _compiled.count_unique(keys) if _use_compiled(compiled) else len(set(keys))


def _replay_pure(policy: Policy, keys: Sequence[int], size: int) -> int:
    index: dict[int, int] = {}
    owner: list[int] = []
    on_hit, on_insert, evict = policy.on_hit, policy.on_insert, policy.evict
    policy.grow(size)
    hits = 0
    for key in keys:
        slot = index.get(key)
        if slot is not None:
            hits += 1
            on_hit(slot)
            continue
        if len(owner) < size:
            slot = len(owner)
            owner.append(key)
        else:
            slot = evict()
            del index[owner[slot]]
            owner[slot] = key
        index[key] = slot
        on_insert(slot, key)
    return hits


def _belady_pure(keys: Sequence[int], nexts: Sequence[int], size: int, bypass: bool) -> int:
    cached: dict[int, int] = {}  # key -> its next access
    heap: list[tuple[int, int]] = []  # (-next access, key); stale entries are skipped
    hits = 0
    for key, nxt in zip(keys, nexts):
        if key in cached:
            hits += 1
        elif len(cached) >= size:
            while cached.get(heap[0][1]) != -heap[0][0]:
                heapq.heappop(heap)
            if bypass and nxt >= -heap[0][0]:
                continue
            del cached[heapq.heappop(heap)[1]]
        cached[key] = nxt
        heapq.heappush(heap, (-nxt, key))
    return hits


def replay(
    keys: array, policy: str, size: int, *, nexts: array | None = None, compiled: bool | None = None
) -> int:
    """The number of hits of ``policy`` in a cache of ``size`` objects on ``keys`` (an
    ``array('q')``). ``nexts`` (from ``next_accesses``) saves recomputing them for Belady.
    ``compiled`` picks the simulator: True compiled, False pure, None the active one."""
    check_choice("policy", policy, POLICY_NAMES)
    check_positive_int("size", size)
    use_compiled = _use_compiled(compiled)
    if policy in BELADY:
        if nexts is None:
            nexts = next_accesses(keys, compiled=use_compiled)
        if use_compiled:
            return _compiled.belady(keys, nexts, size, BELADY[policy])
        return _belady_pure(keys, nexts, size, BELADY[policy])
    if use_compiled:
        return _compiled.simulate(POLICIES[policy](size), keys, size)
    return _replay_pure(PURE_POLICIES[policy](size), keys, size)


def simulate(
    keys: array, policy: str, size: int, *, nexts: array | None = None, compiled: bool | None = None
) -> SimResult:
    """``replay``, timed: the result with requests, hits and the seconds it took."""
    start = time.perf_counter()
    hits = replay(keys, policy, size, nexts=nexts, compiled=compiled)
    return SimResult(policy, size, len(keys), hits, time.perf_counter() - start)
